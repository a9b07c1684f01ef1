"""The demo network's quality measure (issue 15): 8 seeds x 3 yaws (-0.5, 0, +0.5), psi 0.7, the
pickle's own resolutions; seed diversity, view change and sharpness (the demo_quality command
prints them; tests hold the demo checkpoint to them). The renderers are imported when used, so
that the command names its options before torch is loaded."""
import itertools

import numpy as np

SEEDS = tuple(range(8))
YAWS = (-0.5, 0.0, 0.5)
PSI = 0.7
LUMA = np.array([0.299, 0.587, 0.114])
REFERENCE_RESOLUTION = 128     # the distilled demo's output resolution


def seed_diversity(images):
    """Mean absolute difference over all pairs of uint8 images [N, H, W, 3] (0-255)."""
    images = np.asarray(images, dtype=np.float64)
    return float(np.mean([np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]))


def view_change(left, right):
    """Mean absolute difference of paired uint8 images [N, H, W, 3] (0-255)."""
    return float(np.abs(np.asarray(left, np.float64) - np.asarray(right, np.float64)).mean())


def sharpness(images):
    """Mean squared 4-neighbour Laplacian of the luma of uint8 images [N, H, W, 3], over the
    interior pixels."""
    grey = np.asarray(images, dtype=np.float64) @ LUMA
    laplacian = (grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
                 - 4 * grey[:, 1:-1, 1:-1])
    return float(np.mean(laplacian ** 2))


def render_views(session):
    """uint8 images [len(YAWS), len(SEEDS), H, W, 3] of the network of an engine session."""
    from .. import views
    return np.stack([np.stack([views.image_to_uint8(
        views.render_seed(session, seed, yaw, psi=PSI).image).cpu().numpy() for seed in SEEDS])
        for yaw in YAWS])


def render_figures(resolution=REFERENCE_RESOLUTION):
    """render_views' images of what a distilled demo learns: toy figure k (`train --distill`)
    for seed k, from the data camera at each yaw."""
    from .. import procedural
    from . import distill
    return np.stack([np.stack([procedural.render_label(distill.figure(seed),
                                                       procedural.orbit_label(yaw), resolution)
                               for seed in SEEDS]) for yaw in YAWS])


def measure(images):
    """{'seed diversity', 'view change', 'sharpness'} of render_views' images."""
    front, left, right = images[YAWS.index(0.0)], images[YAWS.index(-0.5)], images[YAWS.index(0.5)]
    return {'seed diversity': seed_diversity(front), 'view change': view_change(left, right),
            'sharpness': sharpness(images.reshape(-1, *images.shape[2:]))}
