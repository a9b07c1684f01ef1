"""What every tool shares to make a picture of a network: the official latent of a seed, its ws
conditioned as the official scripts do, the orbit camera around the network's own pivot, and
frames turned into pictures. The command-line tools, shape export, the bench and the viewer all
use these, so that a seed, a camera and a pixel mean the same everywhere."""
import numpy as np
import torch

from . import cameras


def latent(seed, z_dim, device='cpu'):
    """The official scripts' z for a seed: RandomState(seed).randn(1, z_dim), float32."""
    z = np.random.RandomState(seed).randn(1, z_dim).astype(np.float32)
    return torch.from_numpy(z).to(device)


def _device(G):
    return G.backbone.mapping.w_avg.device


def camera(G, yaw=0.0, pitch=0.0, fov_degrees=cameras.FFHQ_FOV_DEGREES, pivot=None):
    """c [1, 25] of the orbit camera at (yaw, pitch) around the pivot and at the radius G was
    trained with (`pivot` overrides the pivot), on G's device."""
    return cameras.orbit_camera_for(G.rendering_kwargs, yaw, pitch, fov_degrees,
                                    device=_device(G), pivot=pivot)


def seed_ws(G, seed, psi=1.0, cutoff=14, fov_degrees=cameras.FFHQ_FOV_DEGREES, cond_yaw=0.0):
    """ws [1, num_ws, w_dim] of a seed as the official scripts compute it: the seed's z, the
    mapping conditioned on the frontal camera (or the one at `cond_yaw` radians: PanoHead's
    --pose_cond, cameras.pose_cond_yaw)."""
    return G.mapping(latent(seed, G.z_dim, _device(G)), camera(G, cond_yaw, 0.0, fov_degrees),
                     truncation_psi=psi, truncation_cutoff=cutoff)


@torch.no_grad()
def render_seed(session, seed, yaw=0.0, pitch=0.0, psi=1.0, cutoff=14, nrr=None,
                fov=cameras.FFHQ_FOV_DEGREES, noise_mode='const', deterministic=False,
                pose_cond=90.0):
    """The Frame of a seed, rendered by an engine session (what generate writes); the mapping
    is conditioned on the frontal camera, or at PanoHead's `pose_cond` degrees (90 frontal)."""
    from .engine import RenderSettings
    G = session.G
    ws = seed_ws(G, seed, psi, cutoff, fov, cameras.pose_cond_yaw(pose_cond))
    torch.manual_seed(seed)  # sample jitter and noise are reproducible per seed
    return session.frame(ws, camera(G, yaw, pitch, fov),
                         RenderSettings(nrr=nrr, noise_mode=noise_mode,
                                        deterministic=deterministic))


def picture(out, kind, index=0):
    """Picture `index` of one of a frame's outputs (`out`: the official synthesis dict, e.g.
    Frame.as_dict()) as H x W x 3 uint8, as the viewer shows it and the videos write it:
    'image' or 'image_raw' in colour, 'image_depth' grey with near bright, 'image_mask'
    (PanoHead's opacity) grey with opaque white."""
    if kind == 'image_depth':
        grey = depth_to_uint8(out['image_depth'], index)
    elif kind == 'image_mask':
        grey = mask_to_uint8(out['image_mask'], index)
    else:
        return image_to_uint8(out[kind], index)
    return grey[..., None].expand(-1, -1, 3).contiguous()


def image_to_uint8(image, index=0):
    """Frame [N, 3, H, W] in about [-1, 1] -> H x W x 3 uint8 on the same device (the official
    scripts' conversion; on CUDA it stays on the GPU for interop)."""
    img = image[index].permute(1, 2, 0)
    return (img * 127.5 + 128).clamp_(0, 255).to(torch.uint8).contiguous()


def mask_to_uint8(mask, index=0):
    """PanoHead's image_mask [N, 1, H, W] (opacity, about [0, 1]) -> H x W uint8, opaque =
    white."""
    return (mask[index, 0] * 255).round().clamp_(0, 255).to(torch.uint8)


def depth_to_uint8(depth, index=0):
    """Depth [N, 1, H, W] -> H x W uint8, near = bright, spread over the frame's own range (a
    flat frame is black); no host synchronisation."""
    d = depth[index, 0]
    lo, hi = d.min(), d.max()
    return ((hi - d) / (hi - lo).clamp_min(1e-8) * 255).round().to(torch.uint8)
