"""Write tests/data/panohead-small.* with PanoHead's own code (a checkout of SizheAn/PanoHead,
commit 17ad915), by the method of the shared PanoHead fixture (docs/panohead-reference.md 5):

- a snapshot as PanoHead's training loop writes it (`training_set_kwargs`, G, D, G_ema,
  `augment_pipe` None; deep copies in eval mode, each network pickled with its embedded
  source), for the released recipe's options (tri-grid depth 3, ToRGB raw image, no decoder
  activation, background network, MaskDualDiscriminatorV2) at a small size: 128x128 output
  through SuperresolutionHybrid2X, 64x64 tri-grid, channel base 1024, at most 16 channels, a
  mapping network 32 features wide; random weights with every bias, noise strength, w_avg and
  constant noise randomised, the camera offset's last layer scaled by 0.05, and G_ema a
  slightly different copy of G;
- that code's outputs for the shared fixture's four cases and its `G(z, c)` call, and a
  density probe, with stochastic sampling off and `noise_mode='const'`;
- a json with the cases, the camera convention and every constructor argument.

    python tools/panohead_fixture.py --panohead ~/PanoHead --out tests/data/panohead-small
"""
import argparse
import copy
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import panohead_code

CASES = [dict(seed=0, yaw=0.0, pitch=0.0, psi=1.0, truncation_cutoff=14,
              neural_rendering_resolution=64),
         dict(seed=1, yaw=0.35, pitch=-0.15, psi=0.7, truncation_cutoff=14,
              neural_rendering_resolution=64),
         dict(seed=2, yaw=np.pi, pitch=0.2, psi=0.5, truncation_cutoff=14,
              neural_rendering_resolution=128),
         dict(seed=3, yaw=-np.pi / 2, pitch=0.0, psi=0.7, truncation_cutoff=14,
              neural_rendering_resolution=64)]
FORWARD_CASE = dict(seed=4, yaw=0.6, pitch=0.1, psi=0.7, truncation_cutoff=14,
                    neural_rendering_resolution=64)
CAMERA = dict(pivot=[0.0, 0.0, 0.0], radius=2.7, fov_deg=18.837, pose_cond_deg=90)
RENDERING = {
    'image_resolution': 128, 'disparity_space_sampling': False, 'clamp_mode': 'softplus',
    'superresolution_module': 'training.superresolution.SuperresolutionHybrid2X',
    'c_gen_conditioning_zero': False, 'gpc_reg_prob': 0.8, 'c_scale': 1.0,
    'superresolution_noise_mode': 'none', 'density_reg': 0.0, 'density_reg_p_dist': 0.004,
    'reg_type': 'l1', 'decoder_lr_mul': 1.0, 'decoder_activation': 'none', 'use_torgb_raw': True,
    'triplane_size': 64, 'triplane_depth': 3, 'trans_reg': 10.0, 'use_background': True,
    'sr_antialias': True, 'depth_resolution': 48, 'depth_resolution_importance': 48,
    'ray_start': 2.25, 'ray_end': 3.3, 'box_warp': 1, 'avg_camera_radius': 2.7,
    'avg_camera_pivot': [0, 0, 0.2], 'density_noise': 0}
CHANNEL_BASE, CHANNEL_MAX = 1024, 16
COMMON = dict(c_dim=25, img_resolution=128, img_channels=3)
OUTPUTS = ('image', 'image_raw', 'image_depth', 'image_mask')


def constructor_kwargs(easy_dict):
    G = dict(z_dim=512, w_dim=512,
             mapping_kwargs=easy_dict(num_layers=2, embed_features=32, layer_features=32),
             architecture='skip', channel_base=CHANNEL_BASE, channel_max=CHANNEL_MAX,
             fused_modconv_default='inference_only', rendering_kwargs=dict(RENDERING),
             num_fp16_res=0, sr_num_fp16_res=4,
             sr_kwargs=easy_dict(channel_base=CHANNEL_BASE, channel_max=CHANNEL_MAX,
                                 fused_modconv_default='inference_only'), conv_clamp=None)
    D = dict(block_kwargs=easy_dict(freeze_layers=0), mapping_kwargs=easy_dict(),
             epilogue_kwargs=easy_dict(mbstd_group_size=4), channel_base=CHANNEL_BASE,
             channel_max=CHANNEL_MAX, disc_c_noise=0.0, seg_resolution=128, seg_channels=1,
             num_fp16_res=4, conv_clamp=256)
    return G, D


def randomise(net, gen):
    """Nothing left at its initial constant: biases, noise strengths, w_avg, constant noise."""
    for name, p in net.named_parameters():
        if name.endswith('noise_strength'):
            p.copy_(torch.randn([], generator=gen) * 0.3)
        elif name.endswith('bias'):
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    for name, b in net.named_buffers():
        if name.endswith('w_avg'):
            b.copy_(torch.randn(b.shape, generator=gen) * (0.5 if b.numel() > 3 else 0.02))
        elif name.endswith('noise_const'):
            b.copy_(torch.randn(b.shape, generator=gen))


def build_snapshot(modules):
    dnnlib = modules['dnnlib']
    TriPlaneGenerator = modules['training.triplane'].TriPlaneGenerator
    Discriminator = modules['training.dual_discriminator'].MaskDualDiscriminatorV2
    G_kwargs, D_kwargs = constructor_kwargs(dnnlib.EasyDict)
    torch.manual_seed(34)
    gen = torch.Generator().manual_seed(34)
    with torch.no_grad():
        G = TriPlaneGenerator(**G_kwargs, **COMMON).train().requires_grad_(False)
        D = Discriminator(**D_kwargs, **COMMON).train().requires_grad_(False)
        randomise(G, gen)
        randomise(D, gen)
        last = getattr(G.t_mapping, f'fc{G.t_mapping.num_layers - 1}')
        last.weight.mul_(0.05)
        last.bias.mul_(0.05)
        G.register_buffer('dataset_label_std', torch.rand(25, generator=gen))
        G_ema = copy.deepcopy(G)
        for p in G_ema.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01 * (p.std() if p.numel() > 1 else 1))
    snapshot = {'training_set_kwargs': {
        'class_name': 'training.dataset.MaskLabeledDataset', 'img_path': 'dataset_img.zip',
        'seg_path': 'dataset_seg.zip', 'use_labels': True, 'max_size': None, 'xflip': True,
        'min_yaw': 0, 'max_yaw': 180, 'back_repeat': 4, 'resolution': 128, 'random_seed': 0}}
    for name, module in (('G', G), ('D', D), ('G_ema', G_ema), ('augment_pipe', None)):
        snapshot[name] = None if module is None else \
            copy.deepcopy(module).eval().requires_grad_(False).cpu()
    return snapshot, G_kwargs, D_kwargs


def reference_outputs(G):
    cam = dict(pivot=CAMERA['pivot'], radius=CAMERA['radius'], fov_degrees=CAMERA['fov_deg'])
    cond = panohead_code.conditioning_camera(CAMERA['pose_cond_deg'], **cam)
    ref = {}
    for i, case in enumerate(CASES):
        z = torch.from_numpy(np.random.RandomState(case['seed']).randn(1, 512)).float()
        c = panohead_code.render_camera(case['yaw'], case['pitch'], **cam)
        trunc = dict(truncation_psi=case['psi'], truncation_cutoff=case['truncation_cutoff'])
        ws = G.mapping(z, cond, **trunc)
        _, delta = G.apply_delta_c(z, cond, **trunc)
        out = G.synthesis(ws, c, neural_rendering_resolution=case['neural_rendering_resolution'],
                          noise_mode='const')
        ref.update({f'z{i}': z, f'ws{i}': ws, f'c{i}': c, f'cond_c{i}': cond, f'delta_c{i}': delta})
        ref.update({f'{k}{i}': out[k] for k in OUTPUTS})
    case = FORWARD_CASE
    z = torch.from_numpy(np.random.RandomState(case['seed']).randn(1, 512)).float()
    c = panohead_code.render_camera(case['yaw'], case['pitch'], **cam)
    trunc = dict(truncation_psi=case['psi'], truncation_cutoff=case['truncation_cutoff'])
    moved, delta = G.apply_delta_c(z, c, **trunc)
    out = G(z, c, neural_rendering_resolution=case['neural_rendering_resolution'],
            noise_mode='const', **trunc)
    ref.update(fwd_z=z, fwd_c=c, fwd_c_new=moved, fwd_delta_c=delta, fwd_ws=G.mapping(z, c, **trunc))
    ref.update({f'fwd_{k}': out[k] for k in OUTPUTS})
    gen = torch.Generator().manual_seed(7)
    points = torch.rand(1, 4096, 3, generator=gen) - 0.5
    probe_ws = G.mapping(torch.randn(1, 512, generator=gen), cond, truncation_psi=0.7,
                         truncation_cutoff=14)
    probe = G.sample_mixed(points, torch.zeros_like(points), probe_ws, noise_mode='const')
    ref.update(probe_points=points, probe_ws=probe_ws, probe_sigma=probe['sigma'])
    return {k: np.asarray(v, dtype=np.float32) for k, v in ref.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--panohead', required=True, help='a checkout of SizheAn/PanoHead')
    p.add_argument('--out', required=True, help='output stem (STEM.pkl, STEM-ref.npz, .json)')
    args = p.parse_args()
    modules = panohead_code.import_panohead(args.panohead)
    panohead_code.deterministic()
    torch.set_num_threads(1)
    snapshot, G_kwargs, D_kwargs = build_snapshot(modules)
    with open(args.out + '.pkl', 'wb') as f:
        pickle.dump(snapshot, f)
    G = panohead_code.load(args.out + '.pkl')['G_ema']          # as a user would open it
    start = time.time()
    with torch.no_grad():
        ref = reference_outputs(G)
    np.savez_compressed(args.out + '-ref.npz', **ref)
    meta = dict(cfg='panohead', scale='small', made_by='tools/panohead_fixture.py',
                cases=CASES, forward_case=FORWARD_CASE, camera=CAMERA,
                deterministic='torch.rand_like -> zeros (no stratified jitter); '
                              'ImportanceRenderer.sample_pdf det=True',
                noise_mode='const', G_kwargs=G_kwargs, D_kwargs=D_kwargs, common_kwargs=COMMON,
                torch=torch.__version__, render_s=round(time.time() - start, 1))
    Path(args.out + '-ref.json').write_text(json.dumps(meta, indent=1) + '\n')
    print(f'wrote {args.out}.pkl, -ref.npz, -ref.json ({meta["render_s"]} s of rendering)')


if __name__ == '__main__':
    main()
