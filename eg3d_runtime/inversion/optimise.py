"""The two optimisations of an inversion. First the latent: w (or w+) from the average w, Adam
with the learning rate ramped up briefly and down at the end, and noise added to w early on so
that it does not settle in the first valley (with --estimate-camera, yaw, pitch and focal length
are fitted at the same time, starting frontal). Then pivotal tuning: a copy of the generator is
fine-tuned at that fixed w until it reproduces the picture, while a locality term keeps its
renders of other ws near the pivot as they were, so that the rest of the latent space and other
views stay intact. Gradients need the reference (float32) path, which G.synthesis takes by
itself whenever autograd is on."""
import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import cameras, configs, views

SYNTHESIS = dict(noise_mode='const', deterministic=True)
W_SAMPLES = 1000             # random ws that measure the spread of the latent space


@dataclass
class Step:
    """What a progress callback gets after every step (raise from it to cancel)."""
    stage: str               # 'w', 'w+', 'camera + w', 'camera + w+' or 'tuning'
    step: int                # 1-based
    total: int
    loss: float
    image: torch.Tensor      # the step's render [1, 3, R, R] in about [-1, 1], detached


@dataclass
class LatentStats:
    w_avg: torch.Tensor      # [1, 1, w_dim]
    spread: float            # root mean square distance of a random w from w_avg
    frontal: torch.Tensor    # the camera the mapping is conditioned on, as official


@torch.no_grad()
def latent_stats(G, seed=0):
    """Where the ws of G lie: their mean (the tracked w_avg) and their spread, measured on
    W_SAMPLES random zs mapped with the frontal camera."""
    device = G.backbone.mapping.w_avg.device
    frontal = views.camera(G)
    z = torch.randn(W_SAMPLES, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    ws = G.mapping(z, frontal.expand(W_SAMPLES, -1))[:, :1]
    w_avg = G.backbone.mapping.w_avg.reshape(1, 1, -1)
    spread = (ws - w_avg).square().sum(-1).mean().sqrt().item()
    return LatentStats(w_avg, spread, frontal)


def learning_rate(base, t, ramp_up=0.05, ramp_down=0.25):
    """`base` at fraction t of the run: linear ramp over the first 5 %, cosine down over the
    last 25 %, so that early steps do not overshoot and the last ones settle."""
    down = min(1.0, (1 - t) / ramp_down)
    return base * min(1.0, t / ramp_up) * (0.5 - 0.5 * math.cos(down * math.pi))


class EstimatedCamera(torch.nn.Module):
    """Yaw, pitch and focal length of an orbit camera around the network's pivot at its radius,
    as parameters; starts frontal at the FFHQ focal length."""

    def __init__(self, G):
        super().__init__()
        rk = G.rendering_kwargs
        self.pivot = cameras.network_pivot(rk)
        self.radius = rk.get('avg_camera_radius', configs.DEFAULT_CAMERA.radius)
        self.device = G.backbone.mapping.w_avg.device
        focal = cameras.fov_to_intrinsics(configs.FFHQ_FOV_DEGREES)[0, 0]
        self.yaw = torch.nn.Parameter(torch.zeros(()))
        self.pitch = torch.nn.Parameter(torch.zeros(()))
        self.log_focal = torch.nn.Parameter(focal.log())

    def forward(self):
        pose = cameras.look_at_orbit(math.pi / 2 + self.yaw, math.pi / 2 + self.pitch,
                                     self.pivot, self.radius)
        return cameras.camera_vector(pose, cameras.intrinsics(self.log_focal.exp())).to(
            self.device)


def project(G, loss_fn, camera, steps, w_plus=False, seed=0, lr=0.1, camera_lr=0.01,
            noise=0.05, noise_ramp=0.75, on_step=None, stats=None):
    """Optimise the latent (and the camera when `camera` is None) for the target of `loss_fn`.
    Returns (ws [1, num_ws, w_dim], c [1, 25]), both detached."""
    stats = stats or latent_stats(G, seed)
    num_ws = G.backbone.mapping.num_ws
    w = stats.w_avg.repeat(1, num_ws if w_plus else 1, 1).clone().requires_grad_(True)
    estimated = EstimatedCamera(G) if camera is None else None
    groups = [{'params': [w], 'base': lr}]
    if estimated is not None:
        groups.append({'params': list(estimated.parameters()), 'base': camera_lr})
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(seed)
    stage = ('camera + ' if estimated is not None else '') + ('w+' if w_plus else 'w')
    for i in range(steps):
        t = i / steps
        for group in optimizer.param_groups:
            group['lr'] = learning_rate(group['base'], t)
        scale = stats.spread * noise * max(0.0, 1 - t / noise_ramp) ** 2
        jitter = torch.randn(w.shape, generator=generator).to(w.device) * scale
        ws = (w + jitter).expand(-1, num_ws, -1)
        c = estimated() if estimated is not None else camera
        out = G.synthesis(ws, c, **SYNTHESIS)
        loss = loss_fn(out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(Step(stage, i + 1, steps, loss.item(), out['image'].detach()))
    c = estimated().detach() if estimated is not None else camera
    return w.detach().expand(-1, num_ws, -1).contiguous(), c


def tune(G, ws, c, loss_fn, steps, lr=3e-4, locality_weight=0.1, locality_radius=0.5,
         seed=0, on_step=None, stats=None):
    """Pivotal tuning: a deep copy of G fine-tuned so that ws renders the target from c. Each
    step also renders a w a fixed distance (`locality_radius` times the ws' spread) from the
    pivot toward a random w with both generators and pulls the copy's render toward the
    original's. Returns the tuned copy, in eval mode without gradients."""
    stats = stats or latent_stats(G, seed)
    tuned = copy.deepcopy(G).eval().requires_grad_(False)
    tuned._last_planes = None
    params = [p for name, p in tuned.named_parameters() if not name.startswith('backbone.mapping.')]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed + 1)
    distance = locality_radius * stats.spread
    for i in range(steps):
        out = tuned.synthesis(ws, c, **SYNTHESIS)
        loss = loss_fn(out)
        if locality_weight:
            z = torch.randn(1, G.z_dim, generator=generator).to(ws.device)
            direction = G.mapping(z, stats.frontal).detach() - ws
            nearby = ws + distance * direction / direction.norm(dim=-1, keepdim=True)
            with torch.no_grad():
                ref = G.synthesis(nearby, c, faithful=True, **SYNTHESIS)
            mine = tuned.synthesis(nearby, c, **SYNTHESIS)
            loss = loss + locality_weight * (F.mse_loss(mine['image'], ref['image'])
                                             + F.mse_loss(mine['image_raw'], ref['image_raw']))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(Step('tuning', i + 1, steps, loss.item(), out['image'].detach()))
    return tuned.requires_grad_(False)


def psnr(a, b):
    """PSNR in dB of two images in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float().clamp(-1, 1)).item()
    return float('inf') if mse == 0 else 10 * math.log10(4 / mse)

