"""The bundled demo checkpoint: small, complete, and its latents are solid objects at the
centre of the volume that the renderer shows from every side."""
import numpy as np
import torch

from checkpoints import DEMO
from eg3d_runtime import cameras, load_network_pkl


def test_demo_checkpoint_is_small_and_complete():
    assert DEMO.stat().st_size < 30 * 2**20
    nets = load_network_pkl(DEMO)
    assert {'G', 'D', 'G_ema'} <= set(nets)
    assert nets['G_ema'].img_resolution == 64
    assert nets['progress']['cur_nimg'] > 0


def test_demo_latents_are_objects_seen_from_every_side():
    G = load_network_pkl(DEMO, keys=('G_ema',))['G_ema']
    z = torch.from_numpy(np.random.RandomState(0).randn(4, G.z_dim)).float()
    ws = G.mapping(z, cameras.orbit_camera_for(G.rendering_kwargs).repeat(4, 1))
    # Density: an object in the middle of the box, empty space in its corners.
    inner = (torch.rand(4, 2000, 3) - 0.5) * 0.2
    corners = torch.tensor([[x, y, z] for x in (-.45, .45) for y in (-.45, .45)
                            for z in (-.45, .45)]).repeat(4, 250, 1)
    sigma = G.sample_mixed(torch.cat([inner, corners], 1), torch.zeros(4, 4000, 3), ws)['sigma']
    density = torch.nn.functional.softplus(sigma - 1)[..., 0]
    assert float(density[:, :2000].mean()) > 10 * float(density[:, 2000:].mean())
    radius = G.rendering_kwargs['avg_camera_radius']
    for yaw in (-0.8, 0.0, 0.8):
        c = cameras.orbit_camera_for(G.rendering_kwargs, yaw=yaw).repeat(4, 1)
        out = G.synthesis(ws, c, noise_mode='const', deterministic=True)
        depth, image = out['image_depth'][:, 0], out['image']
        h, w = depth.shape[1:]
        centre = float(depth[:, h // 3:2 * h // 3, w // 3:2 * w // 3].median())
        assert radius - 0.45 < centre < radius + 0.1        # the surface near the origin
        # Not a blank frame: the middle of the image differs from the white background.
        r = image.shape[-1]
        assert float((image[:, :, r // 3:2 * r // 3, r // 3:2 * r // 3] - 1).abs().mean()) > 0.2
