"""Invert a photo: find the latent of a picture in a network and pivotal-tune a copy of the
network around it (the command, the viewer's Invert panel and the render server call invert)."""
from dataclasses import dataclass

import torch

from ..pickles import PickleLoadError, load_network_pkl, open_generator
from .losses import LpipsDistance, ReconstructionLoss
from .optimise import latent_stats, project, tune
from .targets import InversionError, load_image


@dataclass
class Settings:
    w_plus: bool = False
    num_steps: int = 300
    pti_steps: int = 100
    seed: int = 0
    lpips: LpipsDistance | None = None    # loaded weights; None: pixel L2 + MS-SSIM


@dataclass
class Inversion:
    G: torch.nn.Module       # the tuned copy
    ws: torch.Tensor         # [1, num_ws, w_dim], the pivot
    c: torch.Tensor          # [1, 25], the camera given or estimated


def invert(G, target, camera, settings, on_step=None):
    """Latent then pivotal tuning for `target` [1, 3, R, R] in [-1, 1] seen from `camera`
    (c [1, 25], or None to estimate it). `on_step(Step)` sees every step; raising from it
    stops the inversion."""
    device = G.backbone.mapping.w_avg.device
    loss = ReconstructionLoss(target.to(device), settings.lpips)
    stats = latent_stats(G, settings.seed)
    ws, c = project(G, loss, None if camera is None else camera.to(device), settings.num_steps,
                    settings.w_plus, settings.seed, on_step=on_step, stats=stats)
    tuned = tune(G, ws, c, loss, settings.pti_steps, seed=settings.seed, on_step=on_step,
                 stats=stats) if settings.pti_steps else G
    return Inversion(tuned, ws, c)


def load_inputs(path, picture, device, warn=None):
    """(networks, target [1, 3, R, R]) for inverting `picture` in the network pickle at
    `path`; a network without D cannot be written back as a snapshot. G_ema is the process's
    one copy of that network (pickles.open_generator: the viewer's, when it shows it); the
    inversion only reads it (the tuning changes a copy). `warn(text)` hears of a picture smaller
    than the network's, which is upscaled."""
    try:
        G = open_generator(path, device)
        networks = load_network_pkl(path, device=device, keys=('D', 'augment_pipe'))
    except PickleLoadError as e:
        raise InversionError(e) from None
    if networks.get('D') is None:
        raise InversionError(f'{path}: has no discriminator D to write an official snapshot')
    return {**networks, 'G_ema': G}, load_image(picture, G.img_resolution, warn)
