"""The training loop of one process (docs/eg3d-reference.md 7.1): phases with lazy
regularisation, EMA, ADA, ticks, snapshots and metrics, writing the official run-directory
files.

Differences from the official loop, on purpose:
- Every micro-batch draws its randomness (latents, generator poses, ray jitter, noise, GPC swaps)
  from a seed derived from its global position in the batch, and each process takes a contiguous
  slice of the global batch; with the gradient of every phase averaged over the whole batch, N
  processes compute the same update as one process with the same total batch.
- Gradient accumulation (`--batch-gpu` below batch/gpus) averages instead of summing micro-batch
  gradients, so it does not change the effective learning rate.
- A run resumed from a snapshot continues the image counter and the schedules (see train.py).
- CPU works too (no CUDA-only calls).
"""
import contextlib
import copy
import os
import time

import numpy as np
import torch

from ..engine import EngineOptions, FastTriPlaneGenerator, RenderSettings
from ..memory import cpu_memory_gb
from ..networks.augment import AugmentPipe
from ..networks.discriminator import DualDiscriminator
from ..networks.triplane import TriPlaneGenerator
from ..pickles import save_network_pkl
from ..run_directory import (EXIT_LINE, REALS_FILE, STATS_FILE, STOPPED_LINE, snapshot_kimg_for,
                             snapshot_name, status_line)
from . import stats
from .dataset import ImageFolderDataset, InfiniteSampler
from .loss import EG3DLoss
from .run_files import (append_jsonl, save_fake_grids, save_image_grid,
                        setup_snapshot_image_grid)

FAKES = RenderSettings(noise_mode='const')   # the fakes grids: the network's resolution, jitter


def ada_adjusted_p(p, signs_real, target, batch_size, ada_interval, ada_kimg):
    """ADA's update every `ada_interval` iterations (docs/eg3d-reference.md 7.1): p moves by
    batch·interval/(ada_kimg·1000) toward more augmentation when the mean sign of the real
    logits (r_t) is above `target`, toward less when below; never below 0."""
    adjust = np.sign(signs_real - target) * (batch_size * ada_interval) / (ada_kimg * 1000)
    return max(float(p + adjust), 0.0)


def set_torch_backends(options):
    """The official backend flags: cuDNN autotuning unless --nobench, TF32 off."""
    torch.backends.cudnn.benchmark = options.get('cudnn_benchmark', True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _without_class_name(kwargs):
    return {k: v for k, v in kwargs.items() if k != 'class_name'}


def copy_params_and_buffers(src, dst, source_name):
    """Copy tensors by name for names that exist in both (the official require_all=False)."""
    src_tensors = dict(src.named_parameters()) | dict(src.named_buffers())
    for name, tensor in list(dst.named_parameters()) + list(dst.named_buffers()):
        if name in src_tensors:
            if src_tensors[name].shape != tensor.shape:
                raise ValueError(f'{source_name}: {name} has shape {tuple(src_tensors[name].shape)}'
                                 f', the network being trained has {tuple(tensor.shape)}')
            with torch.no_grad():
                tensor.copy_(src_tensors[name].to(tensor.device))


def lazy_regularised(lr, betas, ratio):
    """Adam's lr and betas for a phase whose regularisation runs lazily, as the official code
    sets them: `ratio` = interval / (interval + 1), 1 for none."""
    return {'lr': lr * ratio, 'betas': [b ** ratio for b in betas]}


class _Phase:
    """One optimisation phase; `reg_ratio` is the lazy-regularisation ratio its optimiser's
    settings were made with (lazy_regularised; 1 without a separate regularisation phase)."""

    def __init__(self, name, module, opt, interval, reg_ratio=1):
        self.name, self.module, self.opt, self.interval = name, module, opt, interval
        self.reg_ratio = reg_ratio
        self.seconds = None


def _phases(G, D, options):
    phases = []
    for name, module, opt_kwargs, interval in (
            ('G', G, options['G_opt_kwargs'], options.get('G_reg_interval')),
            ('D', D, options['D_opt_kwargs'], options.get('D_reg_interval', 16))):
        kwargs = _without_class_name(opt_kwargs)
        # float betas: the official [0, 0.99] holds an int, which torch's Adam refuses
        kwargs['betas'] = [float(b) for b in kwargs['betas']]
        params = list(module.parameters())
        if interval is None:
            phases.append(_Phase(name + 'both', module, torch.optim.Adam(params, **kwargs), 1))
            continue
        ratio = interval / (interval + 1)
        kwargs = dict(kwargs, **lazy_regularised(kwargs['lr'], kwargs['betas'], ratio))
        opt = torch.optim.Adam(params, **kwargs)
        phases += [_Phase(name + 'main', module, opt, 1, ratio),
                   _Phase(name + 'reg', module, opt, interval, ratio)]
    return phases


def _rank_batches(dataset, batch_size, num_gpus, rank, seed):
    """Index lists for this rank: each global batch of the shuffled stream, contiguous slices."""
    per_rank = batch_size // num_gpus
    stream = iter(InfiniteSampler(dataset, seed=seed))
    while True:
        batch = [next(stream) for _ in range(batch_size)]
        yield batch[rank * per_rank:(rank + 1) * per_rank]


def _micro_batch_seed(random_seed, batch_idx, phase_idx, micro_idx):
    return (random_seed * 1_000_003 + batch_idx * 101 + phase_idx) * 4099 + micro_idx


class TrainingLoop:
    """State of a run in one process; `run()` trains until total_kimg or a stop request.

    Other objectives on the same run directory (training/distill.py) override the hooks
    `_open_dataset`, `_make_loss`, `_next_batch`, `_generator_inputs` and `_snapshot_grid`."""

    # Context manager factory wrapped around each phase of a step (the training bench measures
    # per-phase peak memory with it).
    watch_phase = staticmethod(lambda name: contextlib.nullcontext())

    def __init__(self, run_dir, options, rank=0, device='cpu', resume=None, should_stop=None):
        self.o, self.run_dir, self.rank = options, run_dir, rank
        self.device = torch.device(device)
        self.num_gpus, self.batch_size = options['num_gpus'], options['batch_size']
        self.batch_gpu = options['batch_gpu']
        self.should_stop = should_stop or (lambda: False)
        self.log = print if rank == 0 else (lambda *a, **k: None)
        stats.init_multiprocessing(rank, device if self.num_gpus > 1 else None)
        torch.manual_seed(options['random_seed'] * self.num_gpus + rank)
        np.random.seed(options['random_seed'] * self.num_gpus + rank)

        self.log('Loading training set...')
        self.dataset = self._open_dataset(_without_class_name(options['training_set_kwargs']))
        self.log(f'\nNum images:  {len(self.dataset)}\nImage shape: {list(self.dataset.image_shape)}'
                 f'\nLabel shape: {list(self.dataset.label_shape)}\n')
        self.loader = self._make_loader(self.dataset)

        self.log('Constructing networks...')
        common = dict(c_dim=self.dataset.label_dim, img_resolution=self.dataset.resolution,
                      img_channels=self.dataset.num_channels)
        self.G = TriPlaneGenerator(**_without_class_name(options['G_kwargs']), **common)
        self.G.register_buffer('dataset_label_std', torch.from_numpy(self.dataset.get_label_std()))
        self.D = DualDiscriminator(**_without_class_name(options['D_kwargs']), **common)
        self.G = self.G.train().requires_grad_(False).to(self.device)
        self.D = self.D.train().requires_grad_(False).to(self.device)
        # G_ema renders through an engine session: the metrics' G_ema(z, c) and the fakes grid.
        # Without CUDA graphs: each fakes chunk is rendered once per tick with new weights, so a
        # graph (the viewer's) would be captured for a single use every tick and hold its memory.
        self.G_ema = FastTriPlaneGenerator.serving(copy.deepcopy(self.G).eval(),
                                                   EngineOptions(cuda_graphs=False))
        self.augment_pipe = None
        if options.get('augment_kwargs') is not None and (options.get('augment_p', 0) > 0
                                                          or options.get('ada_target') is not None):
            self.log('Setting up augmentation...')
            self.augment_pipe = AugmentPipe(**_without_class_name(options['augment_kwargs']))
            self.augment_pipe = self.augment_pipe.train().requires_grad_(False).to(self.device)
            self.augment_pipe.p.copy_(torch.as_tensor(options.get('augment_p', 0)))
        self.cur_nimg = 0
        self._snapshot_kimgs = {}        # nimg -> the kimg its snapshot and fakes are named by
        if resume is not None:
            self._resume(resume)
        if self.num_gpus > 1:
            self.log(f'Distributing across {self.num_gpus} GPUs...')
            for module in (self.G, self.D, self.G_ema, self.augment_pipe):
                for tensor in [] if module is None else list(module.parameters()) + list(module.buffers()):
                    torch.distributed.broadcast(tensor.data, src=0)

        self.log('Setting up training phases...')
        self.loss = self._make_loss(_without_class_name(options['loss_kwargs']))
        self.phases = _phases(self.G, self.D, options)
        self.ada_stats = stats.Collector(regex='Loss/signs/real') \
            if self.augment_pipe is not None and options.get('ada_target') is not None else None

    def _open_dataset(self, kwargs):
        return ImageFolderDataset(**kwargs)

    def _make_loader(self, dataset):
        """An endless iterator over this rank's batches of `dataset` (data_loader_kwargs)."""
        loader_kwargs = dict(self.o.get('data_loader_kwargs', {}))
        if loader_kwargs.get('num_workers', 0) == 0:
            loader_kwargs.pop('prefetch_factor', None)
        loader_kwargs['pin_memory'] = loader_kwargs.get('pin_memory', False) and self.device.type == 'cuda'
        return iter(torch.utils.data.DataLoader(
            dataset, batch_sampler=_rank_batches(dataset, self.batch_size, self.num_gpus,
                                                 self.rank, self.o['random_seed']),
            **loader_kwargs))

    def _make_loss(self, kwargs):
        return EG3DLoss(self.device, self.G, self.D, augment_pipe=self.augment_pipe, **kwargs)

    def _resume(self, resume):
        """`resume`: {'path', 'networks' (load_network_pkl result), 'cur_nimg'}."""
        self.log(f'Resuming from "{resume["path"]}"')
        nets = resume['networks']
        for name, module in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema)):
            if nets.get(name) is not None:
                copy_params_and_buffers(nets[name], module, resume['path'])
            else:
                self.log(f'{resume["path"]}: no {name} in the snapshot; {name} starts from scratch')
        if self.augment_pipe is not None and nets.get('augment_pipe') is not None \
                and resume.get('cur_nimg', 0) > 0:
            copy_params_and_buffers(nets['augment_pipe'], self.augment_pipe, resume['path'])
        self.cur_nimg = resume.get('cur_nimg', 0)

    # ----------------------------------------------------------------------------- iteration
    def _next_batch(self):
        return self._on_device(*next(self.loader))

    def _on_device(self, images, labels):
        """uint8 images and labels of this rank's batch -> [-1, 1] images and labels on the
        device, in batch_gpu chunks."""
        images = (images.to(self.device).to(torch.float32) / 127.5 - 1).split(self.batch_gpu)
        return images, labels.to(self.device).split(self.batch_gpu)

    def _generator_inputs(self, batch_idx):
        """Latents and dataset poses for every phase, drawn for the global batch, sliced."""
        g = torch.Generator().manual_seed(_micro_batch_seed(self.o['random_seed'], batch_idx, 99, 0))
        n = len(self.phases)
        z = torch.randn([n, self.batch_size, self.G.z_dim], generator=g)
        idx = torch.randint(len(self.dataset), [n * self.batch_size], generator=g)
        c = torch.from_numpy(np.stack([self.dataset.get_label(int(i)) for i in idx]))
        c = c.view(n, self.batch_size, -1)
        per_rank = self.batch_size // self.num_gpus
        lo = self.rank * per_rank
        return ([zp.to(self.device).split(self.batch_gpu) for zp in z[:, lo:lo + per_rank]],
                [cp.to(self.device).split(self.batch_gpu) for cp in c[:, lo:lo + per_rank]])

    def _step(self, batch_idx):
        real_img, real_c = self._next_batch()
        gen_z, gen_c = self._generator_inputs(batch_idx)
        for phase_idx, phase in enumerate(self.phases):
            if batch_idx % phase.interval != 0:
                continue
            with self.watch_phase(phase.name):
                start = time.perf_counter()
                self._run_phase(batch_idx, phase_idx, phase, real_img, real_c, gen_z[phase_idx],
                                gen_c[phase_idx])
                if self.device.type == 'cuda':
                    torch.cuda.synchronize(self.device)
                phase.seconds = time.perf_counter() - start

    def _run_phase(self, batch_idx, phase_idx, phase, real_img, real_c, gen_z, gen_c):
        rounds = len(real_img)
        first_micro = self.rank * rounds
        phase.opt.zero_grad(set_to_none=True)
        phase.module.requires_grad_(True)
        for r in range(rounds):
            torch.manual_seed(_micro_batch_seed(self.o['random_seed'], batch_idx, phase_idx,
                                                first_micro + r))
            self.loss.accumulate_gradients(
                phase.name, real_img[r], real_c[r], gen_z[r], gen_c[r],
                gain=phase.interval / rounds, cur_nimg=self.cur_nimg)
        phase.module.requires_grad_(False)
        params = [p for p in phase.module.parameters() if p.grad is not None]
        if params:
            flat = torch.cat([p.grad.flatten() for p in params])
            if self.num_gpus > 1:
                torch.distributed.all_reduce(flat)
                flat /= self.num_gpus
            torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.reshape(p.shape)
        phase.opt.step()

    def _train_batch(self, batch_idx):
        """One batch: its phases, the EMA, the image counter and ADA (after the batch)."""
        self._step(batch_idx)
        self._update_ema()
        self.cur_nimg += self.batch_size
        self._update_ada(batch_idx + 1)

    def _update_ema(self):
        ema_nimg, rampup = self.o['ema_kimg'] * 1000, self.o.get('ema_rampup', 0.05)
        if rampup is not None:
            ema_nimg = min(ema_nimg, (self.cur_nimg - self._objective_start_nimg()) * rampup)
        beta = 0.5 ** (self.batch_size / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.G_ema.neural_rendering_resolution = self.G.neural_rendering_resolution
        self.G_ema.rendering_kwargs = self.G.rendering_kwargs.copy()

    def _objective_start_nimg(self):
        """Images at which the current objective began: the EMA's rampup counts from there."""
        return 0

    def _update_ada(self, batch_idx):
        if self.ada_stats is None or batch_idx % self.o.get('ada_interval', 4) != 0:
            return
        self.ada_stats.update()
        signs = self.ada_stats.mean('Loss/signs/real')
        if np.isfinite(signs):
            p = ada_adjusted_p(float(self.augment_pipe.p), signs, self.o['ada_target'],
                               self.batch_size, self.o.get('ada_interval', 4),
                               self.o.get('ada_kimg', 500))
            self.augment_pipe.p.copy_(torch.as_tensor(p))

    # ------------------------------------------------------------------------------ snapshots
    def _snapshot_grid(self):
        """(grid size, uint8 reals [N, C, H, W], labels [N, 25], latents [N, z_dim]) of the
        reals.png and fakes grids."""
        grid_size, images, labels = setup_snapshot_image_grid(self.dataset, self.o['random_seed'])
        if self.o.get('image_grid_size'):   # a smaller grid (--grid): the top-left tiles
            (gw, gh), (w, h) = grid_size, self.o['image_grid_size']
            keep = [y * gw + x for y in range(min(h, gh)) for x in range(min(w, gw))]
            grid_size, images, labels = (min(w, gw), min(h, gh)), images[keep], labels[keep]
        g = torch.Generator().manual_seed(self.o['random_seed'])
        return grid_size, images, labels, torch.randn([len(labels), self.G.z_dim], generator=g)

    def _grid_setup(self):
        self.grid_size, images, labels, z = self._snapshot_grid()
        save_image_grid(images, os.path.join(self.run_dir, REALS_FILE), (0, 255), self.grid_size)
        self.grid_z = z.split(self.batch_gpu)
        self.grid_c = torch.from_numpy(labels).split(self.batch_gpu)

    @torch.no_grad()
    def _save_fakes(self):
        """The fakes grids, rendered in batch_gpu chunks, each moved to the host at once: device
        memory does not grow with the grid (32x32 images at 128 px)."""
        parts = {'image': [], 'image_raw': [], 'image_depth': []}
        for z, c in zip(self.grid_z, self.grid_c):
            z, c = z.to(self.device), c.to(self.device)
            frame = self.G_ema.session.frame(self.G_ema.mapping(z, c), c, FAKES)
            for name, chunks in parts.items():
                chunks.append(getattr(frame, name).cpu())
            del frame
        merged = {name: torch.cat(chunks) for name, chunks in parts.items()}
        save_fake_grids(merged, self.run_dir, self._snapshot_kimg(), self.grid_size)

    def _snapshot_kimg(self):
        """The kimg naming the snapshot and fakes at the current image count: whole, as
        official, unless this run has used that whole kimg already (snapshot_kimg_for)."""
        if self.cur_nimg not in self._snapshot_kimgs:
            taken = {nimg // 1000 for nimg in self._snapshot_kimgs}
            self._snapshot_kimgs[self.cur_nimg] = snapshot_kimg_for(self.cur_nimg, taken)
        return self._snapshot_kimgs[self.cur_nimg]

    def _save_network(self):
        path = os.path.join(self.run_dir, snapshot_name(self._snapshot_kimg()))
        save_network_pkl(path, {
            'training_set_kwargs': dict(self.o['training_set_kwargs']),
            'G': self.G, 'D': self.D, 'G_ema': self.G_ema, 'augment_pipe': self.augment_pipe,
            'progress': {'cur_nimg': self.cur_nimg}})
        return path

    def _evaluate_metrics(self, snapshot_pkl):
        from ..metrics import metric_main
        if not self.metrics:
            return
        self.log('Evaluating metrics...')
        for metric in list(self.metrics):
            try:
                result = metric_main.calc_metric(metric, G=self.G_ema, dataset=self.dataset,
                                                 num_gpus=self.num_gpus, rank=self.rank,
                                                 device=self.device,
                                                 inception_path=self.o.get('inception_path'))
            except metric_main.MetricUnavailable as e:
                self.log(f'{e} -- training goes on without {metric}')
                self.metrics.remove(metric)
                continue
            if self.rank == 0:
                print(result)
                metric_main.report_metric(result, self.run_dir, os.path.basename(snapshot_pkl))
            for name, value in result['results'].items():
                stats.report0('Metrics/' + name, value)

    # ---------------------------------------------------------------------------------- run
    def _stop_requested(self):
        flag = torch.tensor([1.0 if self.should_stop() else 0.0], device=self.device)
        if self.num_gpus > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def run(self):
        o = self.o
        self.metrics = [m for m in o.get('metrics', [])]
        total_nimg = int(round(o['total_kimg'] * 1000))
        if self.rank == 0:
            self.log('Exporting sample images...')
            self._grid_setup()
            self.log('Initializing logs...')
        collector = stats.Collector(regex='.*')
        self.log(f'Training for {o["total_kimg"]:g} kimg...\n')
        start_time = tick_start_time = time.time()
        tick_start_nimg, cur_tick, batch_idx = self.cur_nimg, 0, 0
        maintenance_time = 0.0
        stopped = False
        while True:
            self._train_batch(batch_idx)
            batch_idx += 1
            stopped = self._stop_requested()
            done = self.cur_nimg >= total_nimg or stopped
            if not (done or cur_tick == 0 and batch_idx == 1
                    or self.cur_nimg >= tick_start_nimg + o['kimg_per_tick'] * 1000):
                continue
            tick_end_time = time.time()
            self._tick_report(cur_tick, start_time, tick_start_time, tick_end_time,
                              tick_start_nimg, maintenance_time)
            if stopped:
                self.log(STOPPED_LINE)
            if self.rank == 0 and (done or cur_tick % o['image_snapshot_ticks'] == 0):
                self._save_fakes()
            if done or cur_tick % o['network_snapshot_ticks'] == 0:
                snapshot_pkl = self._save_network() if self.rank == 0 else None
                if not stopped:
                    self._evaluate_metrics(snapshot_pkl or '')
            for phase in self.phases:
                if phase.seconds is not None:
                    stats.report0('Timing/' + phase.name, phase.seconds * 1000)
            for name, value in self.loss.schedules(self.cur_nimg).items():
                stats.report0('Schedule/' + name, float('nan') if value is None else value)
            for phase in self.phases:
                if phase.interval == 1:   # one entry per optimizer (reg phases share it)
                    stats.report0(f'Schedule/{phase.name[0]}_lr', phase.opt.param_groups[0]['lr'])
            collector.update()
            if self.rank == 0:
                append_jsonl(os.path.join(self.run_dir, STATS_FILE),
                             dict(collector.as_dict(), timestamp=time.time()))
            cur_tick += 1
            tick_start_nimg, tick_start_time = self.cur_nimg, time.time()
            maintenance_time = tick_start_time - tick_end_time
            if done:
                break
        self.log(f'\n{EXIT_LINE}')
        return stopped

    def _tick_report(self, cur_tick, start_time, tick_start_time, tick_end_time, tick_start_nimg,
                     maintenance_time):
        total_sec = tick_end_time - start_time
        sec_per_tick = tick_end_time - tick_start_time
        sec_per_kimg = sec_per_tick / max(self.cur_nimg - tick_start_nimg, 1) * 1e3
        cuda = self.device.type == 'cuda'
        gpumem = torch.cuda.max_memory_allocated(self.device) / 2**30 if cuda else 0.0
        reserved = torch.cuda.max_memory_reserved(self.device) / 2**30 if cuda else 0.0
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        p = float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0
        values = [('Progress/tick', cur_tick), ('Progress/kimg', self.cur_nimg / 1e3),
                  ('Timing/total_sec', total_sec), ('Timing/sec_per_tick', sec_per_tick),
                  ('Timing/sec_per_kimg', sec_per_kimg),
                  ('Timing/maintenance_sec', maintenance_time),
                  ('Resources/cpu_mem_gb', cpu_memory_gb()),
                  ('Resources/peak_gpu_mem_gb', gpumem),
                  ('Resources/peak_gpu_mem_reserved_gb', reserved), ('Progress/augment', p)]
        for name, value in values:
            stats.report0(name, value)
        stats.report0('Timing/total_hours', total_sec / 3600)
        stats.report0('Timing/total_days', total_sec / 86400)
        self.log(status_line(cur_tick, self.cur_nimg / 1e3, total_sec, sec_per_tick, sec_per_kimg,
                             maintenance_time, cpu_memory_gb(), gpumem, reserved, p))
