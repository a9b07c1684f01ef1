"""`python -m eg3d_runtime.train`: the official EG3D train.py command line
(docs/eg3d-reference.md 4.3), same option names and defaults, on this project's runtime, CPU or
CUDA, one process or many.

Launch modes: one process (`--gpus 1`); `--gpus N` spawns N processes on this machine (NCCL on
CUDA, gloo on CPU); under `torchrun` (multi-node) the process group comes from torchrun's
environment and `--gpus` must equal its world size.

Differences from the official script, on purpose: `--cfg demo` (a small network for the procedural
data, trainable on a CPU); fractional `--kimg`/`--tick`; `--resume` continues the image counter
and every schedule of the snapshot (`--resume_restart True` gives the official restart at 0 with
blur and pose-conditioning fades off); a clean stop on SIGINT/SIGTERM or a `stop-request` file in
the run directory (network snapshot, then exit); `--bench [STEPS]` (training/bench.py) prints where
the first steps spend time and memory, in a temporary run directory, instead of training.
"""
import json
import os
import signal
import sys
import tempfile

from ..memory import InsufficientMemory
from ..run_directory import LOG_FILE, STOP_FILE, output_dir_line
from ..training import run_files
from ..training.footprint import require_training_memory
from ..training.options import TrainError, build_parser
from ..training.training_options import build_options

__all__ = ['main', 'build_parser', 'build_options', 'TrainError']

ONE_LINE_ERRORS = (TrainError, ValueError, OSError,   # DatasetError is a ValueError
                   InsufficientMemory)


def _request_stop(run_dir):
    def handler(signum, frame):
        open(os.path.join(run_dir, STOP_FILE), 'a').close()
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)   # a second signal stops at once
    return handler


def _device_for(rank):
    import torch

    from ..devices import cuda_available
    if cuda_available():
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return torch.device('cuda', rank % torch.cuda.device_count())
    return torch.device('cpu')


def run_process(rank, c, restart, init_method=None, world_size=1):
    """One training process: logging, process group, loop."""
    import torch

    from ..training.resume import load_resume
    from ..training.distill import DistillLoop
    from ..training.loop import TrainingLoop, set_torch_backends
    run_dir = c['run_dir']
    with run_files.tee_output(os.path.join(run_dir, LOG_FILE)):
        device = _device_for(int(os.environ.get('LOCAL_RANK', rank)))
        if world_size > 1 and not torch.distributed.is_initialized():
            backend = 'nccl' if device.type == 'cuda' else 'gloo'
            torch.distributed.init_process_group(backend, init_method=init_method, rank=rank,
                                                 world_size=world_size)
        if device.type == 'cpu' and world_size > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        set_torch_backends(c)
        stop_file = os.path.join(run_dir, STOP_FILE)
        try:
            resume = load_resume(c, restart) if c.get('resume_pkl') else None
            loop_class = DistillLoop if 'distill' in c else TrainingLoop
            loop = loop_class(run_dir, c, rank=rank, device=device, resume=resume,
                              should_stop=lambda: rank == 0 and os.path.exists(stop_file))
            loop.run()
        finally:
            if world_size > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            if rank == 0 and os.path.exists(stop_file):
                os.remove(stop_file)


def _print_options(c, dataset):
    print('\nTraining options:')
    print(json.dumps(c, indent=2))
    print()
    print(output_dir_line(c['run_dir']))
    print(f'Number of GPUs:      {c["num_gpus"]}')
    print(f'Batch size:          {c["batch_size"]} images')
    print(f'Training duration:   {c["total_kimg"]:g} kimg')
    print(f'Dataset path:        {c["training_set_kwargs"]["path"]}')
    print(f'Dataset size:        {c["training_set_kwargs"]["max_size"]} images')
    print(f'Dataset resolution:  {c["training_set_kwargs"]["resolution"]}')
    print(f'Dataset labels:      {c["training_set_kwargs"]["use_labels"]}')
    print(f'Dataset x-flips:     {c["training_set_kwargs"]["xflip"]}')
    print(flush=True)


def main(argv=None):
    parser = build_parser()
    opts = parser.parse_args(argv)
    if opts.outdir is None and opts.bench is None:
        parser.error('the following arguments are required: --outdir')
    torchrun_world = int(os.environ.get('WORLD_SIZE', '0')) if 'RANK' in os.environ else 0
    import torch

    from ..devices import cuda_available
    from ..training.resume import resolve_resume_path
    try:
        if opts.bench is not None and (opts.gpus != 1 or torchrun_world):
            raise TrainError('--bench runs one process: use --gpus 1 without torchrun')
        if opts.bench is not None and opts.distill is not None:
            raise TrainError('--bench measures GAN training: leave out --distill')
        if opts.resume is not None:
            opts.resume = resolve_resume_path(opts.resume)
        c, dataset = build_options(opts)
        if torchrun_world and torchrun_world != opts.gpus:
            raise TrainError(f'--gpus {opts.gpus} does not match torchrun\'s world size '
                             f'{torchrun_world}')
        if not cuda_available() and opts.gpus > 1 and not torchrun_world:
            print(f'No CUDA: running {opts.gpus} CPU processes (gloo).')
        elif cuda_available() and opts.gpus > torch.cuda.device_count() and not torchrun_world:
            raise TrainError(f'--gpus {opts.gpus}: only {torch.cuda.device_count()} CUDA '
                             'devices here (use torchrun for several machines)')
        rank = int(os.environ.get('RANK', 0)) if torchrun_world else 0
        if not opts.dry_run:     # before the run directory is made or anything allocated
            require_training_memory(c, _device_for(int(os.environ.get('LOCAL_RANK', rank))))
        if opts.bench is not None:
            from ..training.bench import run_bench
            return run_bench(c, opts.cfg, _device_for(0), opts.bench)
        if opts.dry_run:
            c['run_dir'] = run_files.next_run_dir(opts.outdir, opts.cfg,
                                                  c['training_set_kwargs']['path'], opts.gpus,
                                                  opts.batch, opts.gamma, opts.desc)
            _print_options(c, dataset)
            print('Dry run; exiting.')
            return 0
        if torchrun_world:
            return _torchrun_main(opts, c, dataset, rank, torchrun_world)
        c['run_dir'] = run_files.create_run_dir(opts.outdir, opts.cfg,
                                                c['training_set_kwargs']['path'], opts.gpus,
                                                opts.batch, opts.gamma, opts.desc)
        _print_options(c, dataset)
        run_files.write_training_options(c['run_dir'], c)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _request_stop(c['run_dir']))
        print('Launching processes...', flush=True)
        # a run that fails in one line before its first tick (a bad dataset or --resume file)
        # or is stopped then leaves no run directory
        stopped = ONE_LINE_ERRORS + (KeyboardInterrupt,)
        with run_files.removed_unless_started(c['run_dir'], stopped):
            if opts.gpus == 1:
                run_process(0, c, opts.resume_restart)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    init = 'file://' + os.path.abspath(os.path.join(tmp, '.torch_distributed_init'))
                    torch.multiprocessing.spawn(run_process, nprocs=opts.gpus,
                                                args=(c, opts.resume_restart, init, opts.gpus))
    except ONE_LINE_ERRORS as e:
        print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
        return 1
    return 0


def _torchrun_main(opts, c, dataset, rank, world_size):
    """Under torchrun: rank 0 creates the run directory and tells the others its name."""
    import torch
    device = _device_for(int(os.environ.get('LOCAL_RANK', rank)))
    torch.distributed.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    try:
        holder = [None]
        if rank == 0:
            holder[0] = run_files.create_run_dir(opts.outdir, opts.cfg,
                                                 c['training_set_kwargs']['path'], opts.gpus,
                                                 opts.batch, opts.gamma, opts.desc)
            c['run_dir'] = holder[0]
            _print_options(c, dataset)
            run_files.write_training_options(holder[0], c)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _request_stop(holder[0]))
        torch.distributed.broadcast_object_list(holder, src=0)
        c['run_dir'] = holder[0]
        run_process(rank, c, opts.resume_restart, init_method='env://', world_size=world_size)
    finally:
        # An error before run_process (which ends the group itself) must not leave gloo's
        # threads to be torn down at exit: that aborts the process and hides the message.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
