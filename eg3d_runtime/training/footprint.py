"""How much memory training takes, estimated from the options before the run directory is made,
so that `train` refuses a --batch / --batch-gpu that cannot fit (memory.require) instead of
growing until the system kills it.

Measured on `--cfg demo` (64 px data, its cbase 1024 / cmax 32, 16+16 depth samples), CPU, peak
RSS of the second training step (all four phases ran in the first) above the constructed loop,
each in a fresh process, load 4 on 2 cores: batch 4 at nrr 32: 640 MB, batch 8: 922 MB, batch 16:
1359 MB (60-70 MB an image, about 400 MB fixed); batch 4 at nrr 64: 956 MB. So an image takes
about 843 bytes a depth sample (nrr^2 rays x samples: G's renderer, forward and backward) and
8.6 kB an output pixel (super-resolution and D at the data's resolution). The estimate rounds
those up and doubles them, per micro-batch (--batch-gpu) image, adds the process's whole batch
of loaded pictures and a fixed margin: generous for the demo (1.6-1.9x the measured peaks).
Wider networks need more than it says (docs/gpu-measurements.md: shapenet 128 at batch 8 peaked
at 36 GB on an H200, 3.4x; ffhq 512 at 36.6 GB, 0.95x), so it refuses only what cannot fit."""
from ..memory import require

SAMPLE_BYTES = 1024         # one depth sample of one ray, G forward and backward
PIXEL_BYTES = 8192          # one output pixel: super-resolution and D, forward and backward
LOADED_PIXEL_BYTES = 16     # one pixel of the loaded batch: uint8 RGB and its float32 copy
SAFETY = 2
MARGIN = 512 << 20


def training_sizes(c):
    """(data resolution, largest neural rendering resolution, depth samples a ray) of the
    training options `c` (training_options.json content)."""
    loss, rk = c['loss_kwargs'], c['G_kwargs']['rendering_kwargs']
    nrr = max(loss['neural_rendering_resolution_initial'],
              loss.get('neural_rendering_resolution_final') or 0)
    return (c['training_set_kwargs']['resolution'], nrr,
            rk['depth_resolution'] + rk['depth_resolution_importance'])


def process_bytes(c):
    """Bytes one training process needs: its micro-batches of c['batch_gpu'] images at the
    data's resolution, neural rendering resolution and depth samples, and its share of the
    batch (c['batch_size'] / c['num_gpus']) as loaded pictures."""
    resolution, nrr, samples = training_sizes(c)
    image = nrr * nrr * samples * SAMPLE_BYTES + resolution * resolution * PIXEL_BYTES
    loaded = c['batch_size'] // c['num_gpus'] * resolution * resolution * LOADED_PIXEL_BYTES
    return SAFETY * c['batch_gpu'] * image + loaded + MARGIN


def require_training_memory(c, device):
    """memory.InsufficientMemory, one line naming --batch and what it trains at, when the
    training processes would not fit: on CUDA each process's device, on the CPU all processes
    together in the machine's memory."""
    resolution, nrr, samples = training_sizes(c)
    processes = 1 if device.type == 'cuda' else c['num_gpus']
    require(processes * process_bytes(c),
            f'--batch {c["batch_size"]} (--batch-gpu {c["batch_gpu"]}, --gpus {c["num_gpus"]}) '
            f'at {resolution} px, nrr {nrr}, {samples} samples',
            'use a smaller --batch-gpu, which accumulates the same --batch, or a smaller --batch',
            device)
