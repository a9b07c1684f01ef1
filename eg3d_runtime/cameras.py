"""Camera poses and the 25-float camera vector `c` in the official conventions
(docs/eg3d-reference.md 5).

World is y-up, the frontal camera sits on +z looking toward -z; camera matrices are OpenCV
cam2world (+x right, +y down, +z forward); intrinsics are normalised by the image size.
"""
import math

import torch

from .configs import DEFAULT_CAMERA, FAMILY_CAMERAS, FFHQ_FOV_DEGREES
from .networks.panohead import is_panohead


def _normalize(v):
    return v / torch.norm(v, dim=-1, keepdim=True)


def cam2world_from_forward(forward, origin):
    """[B,3] viewing direction and camera centre -> [B,4,4] OpenCV cam2world (world up +y)."""
    forward = _normalize(forward)
    up = torch.tensor([0, 1, 0], dtype=forward.dtype, device=forward.device).expand_as(forward)
    right = -_normalize(torch.cross(up, forward, dim=-1))
    down = _normalize(torch.cross(forward, right, dim=-1))
    m = torch.eye(4, dtype=forward.dtype, device=forward.device).repeat(forward.shape[0], 1, 1)
    m[:, :3, :3] = torch.stack((right, down, forward), dim=-1)
    m[:, :3, 3] = origin
    return m


def look_at_orbit(horizontal, vertical, lookat=(0, 0, 0), radius=1.0, device='cpu'):
    """The official LookAtPoseSampler without noise: camera on a sphere around the world origin
    (not the look-at point) at horizontal angle `horizontal` and polar parameter `vertical`
    (pi/2, pi/2 = frontal), looking at `lookat`. Returns [1, 4, 4]. The angles may be tensors
    that need gradients (camera estimation in inversion); the arithmetic is float64 up to the
    official float32 values either way."""
    v = torch.as_tensor(vertical, dtype=torch.float64).reshape(1, 1).clamp(1e-5, math.pi - 1e-5)
    h = torch.as_tensor(horizontal, dtype=torch.float64).reshape(1, 1).float()
    phi = torch.arccos(1 - 2 * (v / math.pi).float())
    origin = torch.zeros((1, 3))
    origin[:, 0:1] = radius * torch.sin(phi) * torch.cos(math.pi - h)
    origin[:, 2:3] = radius * torch.sin(phi) * torch.sin(math.pi - h)
    origin[:, 1:2] = radius * torch.cos(phi)
    target = torch.as_tensor(lookat, dtype=torch.float32).reshape(1, 3)
    return cam2world_from_forward(_normalize(target - origin), origin).to(device)


def fov_to_intrinsics(fov_degrees, device='cpu'):
    """The official FOV_to_intrinsics, 1.414 factor included: 18.837 -> focal 4.2634
    (docs/eg3d-reference.md 5.3)."""
    return intrinsics(float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414)), device)


def intrinsics(focal, device='cpu'):
    """Normalised intrinsics [3, 3] of a focal length (a float, or a tensor that needs
    gradients), principal point at the centre."""
    f = torch.as_tensor(focal, dtype=torch.float32, device=device).reshape(())
    zero, half, one = (torch.tensor(v, device=device) for v in (0.0, 0.5, 1.0))
    return torch.stack([f, zero, half, zero, f, half, zero, zero, one]).reshape(3, 3)


def camera_vector(cam2world, intrinsics):
    """[B,4,4] pose and [3,3] (or [B,3,3]) normalised intrinsics -> c [B, 25]."""
    b = cam2world.shape[0]
    k = intrinsics.reshape(-1, 9).expand(b, 9)
    return torch.cat([cam2world.reshape(b, 16), k.to(cam2world)], dim=1)


def label_problem(values, tolerance=1e-2):
    """Why 25 finite numbers are not a camera a network can render from, or None: the first 16
    must be a cam2world matrix (a rotation, determinant +1, bottom row 0 0 0 1), the last 9
    normalised intrinsics with positive focal lengths and bottom row 0 0 1. (25 zeros used to
    pass as a camera and render NaN.)"""
    c = torch.as_tensor(values, dtype=torch.float64).reshape(25)
    pose, k = c[:16].reshape(4, 4), c[16:].reshape(3, 3)
    rotation = pose[:3, :3]
    if not torch.allclose(pose[3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64),
                          atol=tolerance):
        return 'the cam2world bottom row is not 0 0 0 1'
    if not torch.allclose(rotation.T @ rotation, torch.eye(3, dtype=torch.float64),
                          atol=tolerance) or torch.linalg.det(rotation) <= 0:
        return 'the cam2world 3x3 part is not a rotation'
    if not (k[0, 0] > 0 and k[1, 1] > 0):
        return 'the intrinsics have no positive focal lengths'
    if not torch.allclose(k[2], torch.tensor([0, 0, 1.0], dtype=torch.float64), atol=tolerance):
        return 'the intrinsics bottom row is not 0 0 1'
    return None


def orbit_camera(yaw=0.0, pitch=0.0, fov_degrees=FFHQ_FOV_DEGREES, radius=DEFAULT_CAMERA.radius,
                 pivot=DEFAULT_CAMERA.pivot, device='cpu'):
    """c [1, 25] for the viewer's orbit: horizontal pi/2 + yaw, polar pi/2 + pitch."""
    pose = look_at_orbit(math.pi / 2 + yaw, math.pi / 2 + pitch, pivot, radius)
    return camera_vector(pose, fov_to_intrinsics(fov_degrees)).to(device)


def pose_cond_yaw(pose_cond_degrees):
    """PanoHead's `--pose_cond` (degrees, 90 = frontal, docs/panohead-reference.md 4) as the
    yaw in radians of orbit_camera's convention (0 = frontal)."""
    return math.radians(pose_cond_degrees - 90)


def wrap_yaw(yaw):
    """A yaw in radians taken into [-pi, pi): an orbit goes all the way round."""
    return (yaw + math.pi) % (2 * math.pi) - math.pi


def network_pivot(rendering_kwargs):
    """The look-at point of a network's scripts: its `avg_camera_pivot`, except for PanoHead,
    whose scripts look at the origin whatever that option says (docs/panohead-reference.md
    4)."""
    if is_panohead(rendering_kwargs):
        return FAMILY_CAMERAS['panohead'].pivot
    return rendering_kwargs.get('avg_camera_pivot', DEFAULT_CAMERA.pivot)


def orbit_camera_for(rendering_kwargs, yaw=0.0, pitch=0.0, fov_degrees=FFHQ_FOV_DEGREES,
                     device='cpu', pivot=None):
    """orbit_camera with the radius and pivot a network was trained with (`pivot` overrides
    the pivot, e.g. the viewer's look-at point)."""
    if pivot is None:
        pivot = network_pivot(rendering_kwargs)
    return orbit_camera(yaw, pitch, fov_degrees,
                        radius=rendering_kwargs.get('avg_camera_radius', DEFAULT_CAMERA.radius),
                        pivot=pivot, device=device)
