"""The benchmark: milliseconds per stage and per frame, the engine session beside the faithful
reference path, measured in the same run (the bench command prints it; tools and tests call
run). What each row means: eg3d_runtime/commands/bench.py's help."""
import functools
import os
import platform
import statistics
import time
from dataclasses import dataclass

import torch

from . import configs, preview, views
from .devices import default_device
from .engine import Precision, RenderSettings, Session
from .memory import PeakMemory, require
from .networks.triplane import TriPlaneGenerator
from .rendering.footprint import frame_bytes


@dataclass
class BenchOptions:
    """What the benchmark measures (the bench command's options, same names and defaults)."""
    network: str | None = None          # a pickle; None: a random full-size network of cfg
    cfg: str = 'ffhq'
    device: str | None = None           # None: cuda when available
    precision: str = 'auto'
    nrr: int | None = None              # None: the pickle's, 128 for cfg
    reps: int = 3
    threads: int | None = None
    noise_mode: str = 'const'
    preview_fps: float = 20.0
    preview_frames: int = 40
    empty_space_skipping: bool = False
    march: tuple = ((64, 48, 48), (64, 24, 24))     # extra (nrr, coarse, fine) settings
    no_faithful: bool = False


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------

def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1000, out


def median(values):
    return statistics.median(values) if values else float('nan')


def best(values):
    return min(values) if values else float('nan')


# ------------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------------

def load(args, device):
    if args.network:
        from .network_path import network_path
        from .pickles import load_generator
        G = load_generator(network_path(args.network), device=device)
        name = os.path.basename(args.network)
    else:
        torch.manual_seed(0)
        G = configs.build_generator(args.cfg).to(device)
        name = f'{args.cfg} (random weights, full size)'
    return G.eval().requires_grad_(False), name


class Bench:
    def __init__(self, G, device, nrr, reps, noise_mode='const'):
        self.G = G
        self.device = device
        self.nrr = nrr
        self.reps = reps
        self.noise_mode = noise_mode
        self.cond = views.camera(G)
        self.frame = 0
        self.rows = []            # (stage, best fast ms, best faithful ms)
        self.medians = {}

    def next_camera(self):
        self.frame += 1
        yaw = 0.35 * torch.sin(torch.tensor(self.frame * 0.37)).item()
        pitch = 0.15 * torch.cos(torch.tensor(self.frame * 0.23)).item()
        return views.camera(self.G, yaw, pitch)

    def latent(self, seed):
        """The viewer's and the official scripts' z of a seed (views.latent)."""
        return views.latent(seed, self.G.z_dim, self.device)

    def ws(self, seed):
        return self.G.mapping(self.latent(seed), self.cond, truncation_psi=0.7,
                              truncation_cutoff=14)

    def pair(self, fast_fn, faithful_fn, reps=None, faithful=True):
        """Interleaved timing; returns (fast ms list, faithful ms list or None)."""
        fast, ref = [], []
        for _ in range(reps or self.reps):
            fast.append(timed(fast_fn, self.device)[0])
            if faithful:
                ref.append(timed(faithful_fn, self.device)[0])
        return fast, (ref if faithful else None)

    def add(self, stage, fast, ref):
        """fast, ref: lists of ms (None: not measured)."""
        self.rows.append((stage, best(fast) if fast else None, best(ref) if ref else None))
        self.medians[stage] = {'fast': median(fast) if fast else None,
                               'faithful': median(ref) if ref else None}


def run(args):
    """(result dict, table rows) of one benchmark run with BenchOptions `args`."""
    device = torch.device(args.device or default_device())
    if args.threads:
        torch.set_num_threads(args.threads)
    G, name = load(args, device)
    session = Session(G, device, args.precision)

    def faithful_synthesis(*a, **k):             # the reference path, whatever class G is
        return TriPlaneGenerator.synthesis(G, *a, **k)

    rk = G.rendering_kwargs
    nrr = args.nrr or (G.neural_rendering_resolution if args.network else 128)
    check_memory(G, args, nrr, device)
    d, i = rk['depth_resolution'], rk['depth_resolution_importance']
    b = Bench(G, device, nrr, args.reps, args.noise_mode)
    faithful = not args.no_faithful
    sr_noise = rk.get('superresolution_noise_mode', 'none')
    settings = RenderSettings(nrr=nrr, noise_mode=args.noise_mode)

    with torch.no_grad():
        # warm-up (first calls build caches, probe kernels, allocate buffers)
        ws0 = b.ws(0)
        for _ in range(2):
            session.frame(ws0, b.next_camera(), settings)
        if faithful:
            faithful_synthesis(ws0, b.next_camera(), 32, noise_mode=args.noise_mode)

        # ---- stages ------------------------------------------------------------------------
        z = b.latent(1)
        m_fast, m_ref = b.pair(lambda: G.mapping(z, b.cond, truncation_psi=0.7,
                                                 truncation_cutoff=14),
                               lambda: G.mapping(z, b.cond, truncation_psi=0.7,
                                                 truncation_cutoff=14), faithful=faithful)
        b.add('mapping', m_fast, m_ref)
        seeds = iter(range(100, 10000))
        fresh = [b.ws(next(seeds)) for _ in range(2 * b.reps)]
        bb_fast, bb_ref = b.pair(
            lambda: session.planes(fresh.pop(), args.noise_mode),
            lambda: G.backbone.synthesis(fresh.pop(), noise_mode=args.noise_mode),
            faithful=faithful)
        b.add('backbone (tri-planes)', bb_fast, bb_ref)

        ws = b.ws(2)
        planes = session.planes(ws, args.noise_mode)
        planes_ref = TriPlaneGenerator.planes(G, ws, noise_mode=args.noise_mode) \
            if faithful else None

        def rays(res):
            c = b.next_camera()
            return c, G.ray_sampler(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), res)

        def laps(frames, stage):
            """A stage's times in frames that ran it eagerly (None where a CUDA graph ran the
            whole per-camera part, timed as 'render')."""
            return [f.timings[stage] for f in frames if stage in f.timings] or None

        march = [(nrr, d, i)]
        for extra in args.march:
            if extra not in march:
                march.append(extra)
        frames, features_ref = [], None
        for res, dd, ii in march:
            opts = {**rk, 'depth_resolution': dd, 'depth_resolution_importance': ii}
            c, (o, dr) = rays(res)
            row = RenderSettings(nrr=res, depth_resolution=dd, depth_resolution_importance=ii,
                                 noise_mode=args.noise_mode)
            measured, r_ref = [], []
            for _ in range(b.reps if (res, dd, ii) == (nrr, d, i) else max(1, b.reps // 2)):
                measured.append(session.frame(ws, c, row, planes))
                if faithful:
                    ms, out = timed(functools.partial(G.renderer, planes_ref, G.decoder, o, dr,
                                                      opts), device)
                    r_ref.append(ms)
                    if res == nrr:
                        features_ref = out[0].permute(0, 2, 1).reshape(1, -1, res, res)
            fast = laps(measured, 'march')
            label = f'ray marching nrr {res}, {dd}+{ii} samples'
            if fast is None:
                fast, label = laps(measured, 'render'), label + ' + super-resolution'
            b.add(label, fast, r_ref or None)
            frames += measured

        fimg = next(f for f in frames if f.nrr == nrr)
        sr_ref = [timed(lambda: G.superresolution(features_ref[:, :3], features_ref, ws,
                                                  noise_mode=sr_noise), device)[0]
                  for _ in range(b.reps)] if faithful else None
        b.add('super-resolution (w cached)', laps(frames, 'superresolution'), sr_ref)
        image = fimg.image
        tex_fast, tex_ref = b.pair(lambda: views.image_to_uint8(image),
                                   lambda: views.image_to_uint8(image), faithful=False)
        b.add('texture-ready frame (uint8 HWC)', tex_fast, None)

        # ---- frames ------------------------------------------------------------------------
        def new_latent(faithful_path):
            def fn():
                w = G.mapping(b.latent(next(seeds)), b.cond, truncation_psi=0.7,
                              truncation_cutoff=14)
                if faithful_path:
                    image = faithful_synthesis(w, b.next_camera(), nrr,
                                               noise_mode=args.noise_mode)['image']
                else:
                    image = session.frame(w, b.next_camera(), settings).image
                return views.image_to_uint8(image)
            return fn

        with PeakMemory(device) as mem_new:
            nl_fast = [timed(new_latent(False), device)[0] for _ in range(b.reps)]
        nl_ref = []
        if faithful:
            with PeakMemory(device) as mem_new_ref:
                nl_ref = [timed(new_latent(True), device)[0] for _ in range(b.reps)]
        b.add('FRAME new latent', nl_fast, nl_ref if faithful else None)

        planes = session.planes(ws, args.noise_mode)
        if faithful:
            TriPlaneGenerator.planes(G, ws, cache_backbone=True, noise_mode=args.noise_mode)

        def camera_only(faithful_path):
            def fn():
                if faithful_path:
                    image = faithful_synthesis(ws, b.next_camera(), nrr,
                                               noise_mode=args.noise_mode,
                                               use_cached_backbone=True)['image']
                else:
                    image = session.frame(ws, b.next_camera(), settings, planes).image
                return views.image_to_uint8(image)
            return fn

        with PeakMemory(device) as mem_cam:
            co_fast = [timed(camera_only(False), device)[0] for _ in range(max(b.reps, 3))]
        co_ref = []
        if faithful:
            with PeakMemory(device) as mem_cam_ref:
                co_ref = [timed(camera_only(True), device)[0] for _ in range(b.reps)]
        b.add('FRAME camera only (cached planes)', co_fast, co_ref if faithful else None)

        # ---- preview (simulated drag) ------------------------------------------------------
        ladder = preview.ladder_for(G) if args.network else preview.DEFAULT_LADDER
        ctrl = preview.AdaptivePreview(target_fps=args.preview_fps, ladder=ladder)
        cams = [b.next_camera() for _ in range(args.preview_frames)]
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else None
        with PeakMemory(device) as mem_prev:
            timings = preview.drag(session, ws, cams, ctrl, noise_mode=args.noise_mode,
                                   empty_space_skipping=args.empty_space_skipping, sync=sync)
        settled = timings[len(timings) // 2:]
        final = ctrl.settings
        same = [t * 1000 for s, t in settled if s == final] or [t * 1000 for _, t in settled]
        prev_ms = median(same)          # a drag is judged by its typical frame, not its best
        prev_ref = None
        if faithful:
            def faithful_preview():
                out = faithful_synthesis(ws, b.next_camera(), final.nrr,
                                         noise_mode=args.noise_mode,
                                         rendering_overrides=final.overrides(),
                                         superresolution=False, use_cached_backbone=True)
                return views.image_to_uint8(out['image_raw'])
            prev_ref = [timed(faithful_preview, device)[0] for _ in range(max(3, b.reps))]
        prev_ref_ms = median(prev_ref) if faithful else None
        stage = (f'FRAME preview nrr {final.nrr}, {final.depth_resolution}+'
                 f'{final.depth_resolution_importance} (adaptive; median)')
        b.rows.append((stage, prev_ms, prev_ref_ms))
        b.medians[stage] = {'fast': prev_ms, 'faithful': prev_ref_ms}

    result = {
        'network': name,
        'device': describe_device(device),
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'nrr': nrr, 'depth_resolution': d, 'depth_resolution_importance': i,
        'image_resolution': G.img_resolution,
        'noise_mode': args.noise_mode,
        'precision': session.precision_in_use().as_dict(),
        'stages_ms': {row[0]: {'fast': row[1], 'faithful': row[2]} for row in b.rows},
        'stages_median_ms': b.medians,
        'timing': f'best of {b.reps} (frames, stages); preview: median of the settled drag',
        'camera_only_frame_ms': best(co_fast),
        'new_latent_frame_ms': best(nl_fast),
        'preview_frame_ms': prev_ms,
        'preview_fps': 1000 / prev_ms,
        'preview_settings': {'nrr': final.nrr, 'depth_resolution': final.depth_resolution,
                             'depth_resolution_importance': final.depth_resolution_importance,
                             'target_fps': args.preview_fps},
        'camera_only_fps': 1000 / best(co_fast),
        'peak_memory_mb': {'new_latent': mem_new.peak_mb, 'camera_only': mem_cam.peak_mb,
                           'preview': mem_prev.peak_mb},
    }
    if faithful:
        result.update({
            'faithful_camera_only_frame_ms': best(co_ref),
            'faithful_new_latent_frame_ms': best(nl_ref),
            'faithful_preview_frame_ms': prev_ref_ms,
            'faithful_preview_fps': 1000 / prev_ref_ms,
            'speedup_camera_only': best(co_ref) / best(co_fast),
            'speedup_new_latent': best(nl_ref) / best(nl_fast),
            'speedup_preview': prev_ref_ms / prev_ms,
        })
        result['peak_memory_mb'].update({'faithful_new_latent': mem_new_ref.peak_mb,
                                         'faithful_camera_only': mem_cam_ref.peak_mb})
    return result, b.rows


def describe_device(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'CPU {model}, {os.cpu_count()} logical cores'


def format_table(result, rows):
    lines = [f"network: {result['network']}",
             f"device: {result['device']}, torch {result['torch']}, {result['threads']} threads",
             f"settings: {result['image_resolution']}^2 output, nrr {result['nrr']}, "
             f"{result['depth_resolution']}+{result['depth_resolution_importance']} samples, "
             f"noise {result['noise_mode']}, precision: "
             f"{Precision(**result['precision']).describe()}",
             '',
             f"{'stage':<52} {'fast ms':>10} {'faithful ms':>12} {'ratio':>7}"]
    for stage, fast, ref in rows:
        ratio = f'{ref / fast:6.1f}x' if ref and fast else ''
        ref_s = f'{ref:12.1f}' if ref is not None else f"{'-':>12}"
        fast_s = f'{fast:10.1f}' if fast is not None else f"{'-':>10}"
        lines.append(f'{stage:<52} {fast_s} {ref_s} {ratio:>7}')
    lines.append('')
    lines.append(f"camera-only {result['camera_only_fps']:.2f} FPS, preview "
                 f"{result['preview_fps']:.1f} FPS (target {result['preview_settings']['target_fps']})")
    mem = ', '.join(f'{k} {v:.0f}' for k, v in result['peak_memory_mb'].items())
    lines.append(f'peak memory (MB, {"CUDA allocated" if "cuda" in str(result["device"]).lower() or "NVIDIA" in result["device"] else "process RSS"}): {mem}')
    return '\n'.join(lines)


def check_memory(G, args, nrr, device):
    """InsufficientMemory (one line) when the largest frame the bench renders would not fit:
    the faithful path holds every depth sample at once."""
    rk = G.rendering_kwargs
    settings = [(nrr, rk['depth_resolution'], rk['depth_resolution_importance']), *args.march]
    res, coarse, fine = max(settings, key=lambda s: s[0] ** 2 * (s[1] + s[2]))
    require(frame_bytes(G, res, samples=coarse + fine, faithful=not args.no_faithful),
            f'--nrr {res} with {coarse}+{fine} samples' + ('' if args.no_faithful else
                                                          ' on the faithful path'),
            'use a smaller --nrr or --march, or --no-faithful', device)


