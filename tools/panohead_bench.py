"""Frame times of a full-size PanoHead network with this project's fast path beside PanoHead's
own code (a checkout of SizheAn/PanoHead, imported by panohead_code.py), in the same process,
runs interleaved, same inputs, on the CPU.

The network is the released recipe's structure (`easy-khair-180-gpc0.8-trans10`: 512x512
through SuperresolutionHybrid8XDC, tri-grid 256x256 of depth 3, channel base 32768, at most
512 channels, mapping depth 2, ToRGB raw image, background network, no decoder activation)
with random weights, built by PanoHead's code, and opened by our loader from the pickle PanoHead's code writes.

- new latent: mapping, then the frame (backbone, background, ray marching, super-resolution);
- camera only: the tri-planes kept from the previous frame (PanoHead's use_cached_backbone;
  its background network still runs);
- preview: the viewer's adaptive preview during a simulated drag (raw image, no
  super-resolution, settings chosen to hold 20 FPS); PanoHead's code has no such mode.

Times are the best of --reps (other processes only ever add time; medians are printed too).

    python tools/panohead_bench.py --panohead ~/PanoHead [--nrr 64] [--reps 3]
"""
import argparse
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import panohead_code                                                    # noqa: E402
from panohead_fixture import RENDERING                                 # noqa: E402

from eg3d_runtime import load_generator, preview, views                # noqa: E402

FULL_SIZE = {'image_resolution': 512, 'triplane_size': 256,
             'superresolution_module': 'training.superresolution.SuperresolutionHybrid8XDC'}


def build_full_size(modules, path):
    """The released recipe's generator with random weights (returned), pickled as PanoHead
    writes it (for our loader)."""
    dnnlib = modules['dnnlib']
    TriPlaneGenerator = modules['training.triplane'].TriPlaneGenerator
    torch.manual_seed(0)
    G = TriPlaneGenerator(
        z_dim=512, w_dim=512, mapping_kwargs=dnnlib.EasyDict(num_layers=2), architecture='skip',
        channel_base=32768, channel_max=512, fused_modconv_default='inference_only',
        rendering_kwargs={**RENDERING, **FULL_SIZE}, num_fp16_res=0, sr_num_fp16_res=4,
        sr_kwargs=dnnlib.EasyDict(channel_base=32768, channel_max=512,
                                  fused_modconv_default='inference_only'), conv_clamp=None,
        c_dim=25, img_resolution=512, img_channels=3).eval().requires_grad_(False)
    with torch.no_grad():                       # nothing exactly zero (noise, biases)
        for name, p in G.named_parameters():
            if name.endswith(('noise_strength', 'bias')):
                p.add_(0.1)
    with open(path, 'wb') as f:
        pickle.dump({'training_set_kwargs': None, 'G_ema': G, 'augment_pipe': None}, f)
    return G


def best_and_median(times):
    return min(times), statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--panohead', required=True, help='a checkout of SizheAn/PanoHead')
    p.add_argument('--nrr', type=int, default=64, help='neural rendering resolution (64)')
    p.add_argument('--reps', type=int, default=3, help='timed runs per frame kind (3)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: all)')
    p.add_argument('--preview-frames', type=int, default=60)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    modules = panohead_code.import_panohead(args.panohead)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'panohead-full-size.pkl')
        theirs = build_full_size(modules, path)
        ours = load_generator(path)
    nrr, frame = args.nrr, [0]
    cond = views.camera(ours)

    def camera():
        frame[0] += 1
        return views.camera(ours, 0.6 * torch.sin(torch.tensor(frame[0] * 0.7)).item(),
                            0.2 * torch.cos(torch.tensor(frame[0] * 0.3)).item())

    def z(seed):
        return torch.randn(1, 512, generator=torch.Generator().manual_seed(seed))

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def new_latent(G, seed):
        return lambda: G.synthesis(G.mapping(z(seed), cond, truncation_psi=0.7),
                                   camera(), neural_rendering_resolution=nrr, noise_mode='const')

    def camera_only(G, ws):
        return lambda: G.synthesis(ws, camera(), neural_rendering_resolution=nrr,
                                   noise_mode='const', use_cached_backbone=True)

    rows = {}
    with torch.no_grad():
        ws = ours.mapping(z(1), cond, truncation_psi=0.7)
        for G in (ours, theirs):                                 # warm-up, planes kept
            G.synthesis(ws, camera(), neural_rendering_resolution=nrr, noise_mode='const',
                        cache_backbone=True)
        print(f'ours: {ours.session.describe()}', flush=True)
        for kind, make in (('new latent', lambda G, i: new_latent(G, 100 + i)),
                           ('camera only', lambda G, i: camera_only(G, ws))):
            times = {'ours': [], 'PanoHead': []}
            for i in range(args.reps):                           # interleaved
                times['ours'].append(timed(make(ours, i)))
                times['PanoHead'].append(timed(make(theirs, i)))
                print(f'{kind} run {i + 1}: ours {times["ours"][-1]:.2f} s, PanoHead '
                      f'{times["PanoHead"][-1]:.2f} s', flush=True)
            rows[kind] = {who: best_and_median(t) for who, t in times.items()}
        controller = preview.AdaptivePreview(20.0, ladder=preview.ladder_for(ours))
        cams = [camera() for _ in range(args.preview_frames)]
        timings = preview.drag(ours.session, ws, cams, controller, noise_mode='const')
    settled = [t for s, t in timings[len(timings) // 2:] if s == controller.settings]
    preview_s = statistics.median(settled or [t for _, t in timings[len(timings) // 2:]])
    load = os.getloadavg()
    print(f'\nfull-size PanoHead (random weights), nrr {nrr}, '
          f'{ours.rendering_kwargs["depth_resolution"]}+'
          f'{ours.rendering_kwargs["depth_resolution_importance"]} samples, 512x512, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}; load average '
          f'{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}')
    print('| frame | ours ms (best, median) | PanoHead code ms (best, median) | speed-up |')
    print('|---|---:|---:|---:|')
    for kind, r in rows.items():
        (ob, om), (pb, pm) = r['ours'], r['PanoHead']
        print(f'| {kind} | {ob * 1e3:.0f}, {om * 1e3:.0f} | {pb * 1e3:.0f}, {pm * 1e3:.0f} | '
              f'{pb / ob:.1f}x |')
    s = controller.settings
    print(f'| preview while dragging (nrr {s.nrr}, {s.depth_resolution}+'
          f'{s.depth_resolution_importance}, no super-resolution; median) | '
          f'{preview_s * 1e3:.0f} ({1 / preview_s:.1f} FPS) | - | - |')


if __name__ == '__main__':
    main()
