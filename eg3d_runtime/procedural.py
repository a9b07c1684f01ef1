"""Procedural multi-view training data: toy figures rendered with known cameras.

Each image shows a new random "toy figure" (ellipsoid body, head, cone nose pointing to +z, two
eyes, zero to two arms) seen from a random camera in the official conventions
(docs/eg3d-reference.md 5): a look-at orbit around the world origin at radius 2.7 with the FFHQ
intrinsics. The figure stays within 0.3 of the origin (inside the [-0.4, 0.4]^3 cube), so it is
whole in every view.

Rendering is sphere tracing of a signed distance function in numpy, vectorised over the rays,
with 2x2 supersampling, Lambertian + ambient shading under a fixed light and a white background.
The light lies in the x = 0 plane and the object distribution is symmetric in x (arm sides are
drawn at random), so a horizontally mirrored image with the mirrored camera is another valid
sample: `--mirror` / xflip augmentation does not change the data distribution.
"""
import collections
import concurrent.futures
import dataclasses
import math
import os
import signal

import numpy as np

from . import cameras, configs

CAMERA = configs.FAMILY_CAMERAS['demo']    # the demo network's camera (--cfg demo)
YAW_RANGE = 1.2             # radians either side of frontal
PITCH_RANGE = 0.35          # look_at_orbit's polar parameter either side of level
# Figures are designed within 0.3 of the origin and drawn 1.4x larger, so that they fill more of
# the FFHQ camera's frame (0.89 units across at CAMERA.radius): a small figure hardly changes when
# orbited (at 1x, yaw -0.5 and +0.5 differ by 5.0 on issue 15's view-change measure; at 1.4x by
# 10.1). Larger, a hand or the beak would often leave the frame; at 1.4x about one random view in
# 60 touches its edge. The bound (0.42) keeps every point between the renderer's ray_start and
# ray_end (2.25, 3.3) from any view.
FIGURE_SCALE = 1.4
BOUND_RADIUS = 0.3 * FIGURE_SCALE   # the figure lies within this distance of the origin
LIGHT = np.array([0.0, 0.8, 0.6])   # toward the light: above and in front, x = 0
AMBIENT, DIFFUSE = 0.35, 0.65
HIT_EPS = 2e-4
MAX_STEPS = 64
TILE = 4                    # rays per side of a cone-traced tile (2 x 2 pixels)
CONE_EPS = 5e-3


@dataclasses.dataclass(frozen=True)
class ToyFigure:
    """Geometry (world units, y up, front toward +z) and linear RGB colours in [0, 1]."""
    body_center: tuple
    body_radii: tuple
    body_colour: tuple
    head_center: tuple
    head_radius: float
    head_colour: tuple
    nose_tip: tuple
    nose_radius: float
    nose_colour: tuple
    eyes: tuple                 # ((centre, radius), ...)
    eye_colour: tuple
    arms: tuple                 # ((shoulder, hand, radius), ...)
    arm_colour: tuple


def _hsv(h, s, v):
    return tuple(float(x) for x in np.clip(
        v * (1 - s + s * np.clip(np.abs((h * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)), 0, 1))


def random_object(rng):
    """A random ToyFigure from a numpy Generator, within BOUND_RADIUS of the origin."""
    rx, ry, rz = rng.uniform(0.10, 0.14), rng.uniform(0.10, 0.13), rng.uniform(0.08, 0.12)
    body_c = (0.0, -0.08, 0.0)
    hr = rng.uniform(0.07, 0.095)
    head_c = (0.0, body_c[1] + ry + 0.6 * hr, 0.0)
    nose_len = rng.uniform(0.04, 0.075)
    nose_tip = (0.0, head_c[1] - 0.2 * hr, hr + nose_len)
    eye_dir = np.array([math.sin(0.4), 0.35, math.cos(0.4)])
    eye_dir /= np.linalg.norm(eye_dir)
    eyes = tuple(((s * eye_dir[0] * hr, head_c[1] + eye_dir[1] * hr, eye_dir[2] * hr), 0.22 * hr)
                 for s in (-1.0, 1.0))
    sides = ((), (-1.0,), (1.0,), (-1.0, 1.0))[rng.integers(4)]
    raise_hand = rng.uniform(-0.07, 0.07)
    arm_r = rng.uniform(0.022, 0.032)
    arms = tuple(((s * 0.8 * rx, body_c[1] + 0.3 * ry, 0.0),
                  (s * (rx + 0.05), body_c[1] + raise_hand, 0.03), arm_r) for s in sides)
    hue = rng.uniform()
    return scale_object(ToyFigure(
        body_center=body_c, body_radii=(rx, ry, rz),
        body_colour=_hsv(hue, rng.uniform(0.45, 0.85), rng.uniform(0.6, 0.95)),
        head_center=head_c, head_radius=hr,
        head_colour=_hsv((hue + rng.uniform(0.2, 0.8)) % 1, rng.uniform(0.2, 0.6),
                         rng.uniform(0.8, 1)),
        nose_tip=nose_tip, nose_radius=rng.uniform(0.04, 0.055),
        nose_colour=_hsv(rng.uniform(-0.04, 0.1) % 1, 0.9, 0.95),
        eyes=eyes, eye_colour=(0.05, 0.05, 0.08),
        arms=arms, arm_colour=_hsv(rng.uniform(), rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.9))),
        FIGURE_SCALE)


def scale_object(obj, factor):
    """The figure scaled by `factor` about the origin."""
    def scale(p):
        return tuple(factor * x for x in p)
    return dataclasses.replace(
        obj, body_center=scale(obj.body_center), body_radii=scale(obj.body_radii),
        head_center=scale(obj.head_center), head_radius=factor * obj.head_radius,
        nose_tip=scale(obj.nose_tip), nose_radius=factor * obj.nose_radius,
        eyes=tuple((scale(c), factor * r) for c, r in obj.eyes),
        arms=tuple((scale(a), scale(b), factor * r) for a, b, r in obj.arms))


def mirror_object(obj):
    """The figure reflected across the world x = 0 plane."""
    def flip(p):
        return (-p[0], p[1], p[2])
    return dataclasses.replace(
        obj, body_center=flip(obj.body_center), head_center=flip(obj.head_center),
        nose_tip=flip(obj.nose_tip), eyes=tuple((flip(c), r) for c, r in obj.eyes),
        arms=tuple((flip(a), flip(b), r) for a, b, r in obj.arms))


def random_camera(rng):
    """A label [25] (float32): orbit yaw ~ U(-1.2, 1.2), pitch ~ U(-0.35, 0.35), FFHQ focal."""
    yaw = rng.uniform(-YAW_RANGE, YAW_RANGE)
    pitch = rng.uniform(-PITCH_RANGE, PITCH_RANGE)
    return orbit_label(yaw, pitch)


def orbit_label(yaw, pitch=0.0):
    """The label [25] (float32) of the data's orbit camera at (yaw, pitch) from frontal."""
    pose = cameras.look_at_orbit(math.pi / 2 + yaw, math.pi / 2 + pitch, CAMERA.pivot,
                                 CAMERA.radius)
    c = cameras.camera_vector(pose, cameras.fov_to_intrinsics(CAMERA.fov_degrees))
    return c[0].numpy().astype(np.float32)


class _Scene:
    """The figure as three batches of primitives (one ellipsoid, spheres, round cones), so a
    distance query is a few vectorised numpy expressions whatever the number of parts. Points
    come as separate float32 x, y, z arrays [N] and parts lie along the first axis: numpy is
    slow at sums and minima over a short last axis."""

    def __init__(self, obj):
        self.body_c = np.asarray(obj.body_center, dtype=np.float32)
        self.body_r = np.asarray(obj.body_radii, dtype=np.float32)
        spheres = [(obj.head_center, obj.head_radius, obj.head_colour)]
        spheres += [(c, r, obj.eye_colour) for c, r in obj.eyes]
        spheres += [(hand, 1.35 * r, obj.arm_colour) for _, hand, r in obj.arms]
        cones = [(obj.head_center, obj.nose_tip, obj.nose_radius, 0.25 * obj.nose_radius,
                  obj.nose_colour)]
        cones += [(a, b, r, r, obj.arm_colour) for a, b, r in obj.arms]
        self.sphere_c = np.array([s[0] for s in spheres], dtype=np.float32).T[:, :, None]
        self.sphere_r = np.array([s[1] for s in spheres], dtype=np.float32)[:, None]
        a = np.array([c[0] for c in cones], dtype=np.float32)
        self.cone_a = a.T[:, :, None]
        self.cone_ba = (np.array([c[1] for c in cones], dtype=np.float32) - a).T[:, :, None]
        self.cone_l2 = sum(self.cone_ba[i] ** 2 for i in range(3))
        self.cone_ra = np.array([c[2] for c in cones], dtype=np.float32)[:, None]
        self.cone_rb = np.array([c[3] for c in cones], dtype=np.float32)[:, None]
        self.colours = np.array([obj.body_colour] + [s[2] for s in spheres]
                                + [c[4] for c in cones], dtype=np.float32)

    def _parts(self, x, y, z):
        """Distances to the ellipsoid [N], the spheres [S, N] and the round cones [C, N]."""
        # Ellipsoid: the unit-sphere distance in scaled space times the smallest radius is a
        # true lower bound, so sphere tracing never steps through the surface.
        c, r = self.body_c, self.body_r
        body = (np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2
                        + ((z - c[2]) / r[2]) ** 2) - 1) * r.min()
        c = self.sphere_c
        spheres = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - self.sphere_r
        return body, spheres, self._round_cones(x, y, z)

    def _round_cones(self, x, y, z):
        """Exact distance to the hull of spheres (a, ra), (b, rb): a cone, a capsule if equal."""
        a, ba, l2, ra, rb = self.cone_a, self.cone_ba, self.cone_l2, self.cone_ra, self.cone_rb
        rr = ra - rb
        a2 = l2 - rr * rr
        pa = (x - a[0], y - a[1], z - a[2])
        along = pa[0] * ba[0] + pa[1] * ba[1] + pa[2] * ba[2]
        beyond = along - l2
        x2 = sum((pa[i] * l2 - along * ba[i]) ** 2 for i in range(3))
        y2, z2 = along * along * l2, beyond * beyond * l2
        k = np.sign(rr) * rr * rr * x2
        side = (np.sqrt(np.maximum(x2 * a2 / l2, 0)) + along * rr) / l2 - ra
        at_b = np.sqrt(x2 + z2) / l2 - rb
        at_a = np.sqrt(x2 + y2) / l2 - ra
        return np.where(np.sign(beyond) * a2 * z2 > k, at_b,
                        np.where(np.sign(along) * a2 * y2 < k, at_a, side))

    def distances(self, x, y, z):
        """[parts, N] signed distances to each primitive (the order of `colours`)."""
        body, spheres, cones = self._parts(x, y, z)
        return np.concatenate([body[None], spheres, cones])

    def sdf(self, x, y, z):
        body, spheres, cones = self._parts(x, y, z)
        return np.minimum(np.minimum(body, spheres.min(axis=0)), cones.min(axis=0))


def sdf(obj, points):
    """Signed distance [N] (float32) of the figure at world points [N, 3] (negative inside)."""
    x, y, z = np.asarray(points, dtype=np.float32).T
    return _Scene(obj).sdf(x, y, z)


def _rays(cam2world, intrinsics, n):
    """Camera centre [3] and unit directions [3, n*n] (float32 x, y, z rows: tracing is memory
    bound) for an n x n pixel grid (pixel centres: docs/eg3d-reference.md 3.1).

    Offsets are taken from the image centre so that mirrored pixels get exactly negated
    camera-space x: mirroring the camera mirrors the image bit for bit."""
    k = np.asarray(intrinsics, dtype=np.float64)
    m = np.asarray(cam2world, dtype=np.float64)
    fx, sk, cx, fy, cy = k[0, 0], k[0, 1], k[0, 2], k[1, 1], k[1, 2]
    offs = (np.arange(n) - (n - 1) / 2) / n
    y_c = ((offs + (0.5 - cy)) / fy)[:, None]
    x_c = ((offs + (0.5 - cx) - sk * y_c) / fx).astype(np.float32)
    y_c = y_c.astype(np.float32)
    rot = m[:3, :3].astype(np.float32)
    d = np.stack([(x_c * rot[i, 0] + y_c * rot[i, 1] + rot[i, 2]).reshape(-1) for i in range(3)])
    d /= np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    return m[:3, 3].astype(np.float32), d


def _cone_starts(scene, origin, dirs, n, cam2world, intrinsics):
    """Safe start distances [n*n] for the rays (inf: a certain miss) from one cone per tile of
    TILE x TILE rays. Each tile marches its centre ray with steps that keep the whole cone of
    its rays in empty space (the sdf is 1-Lipschitz): a background tile stops there, the
    others hand their rays a start near the surface. Saves most steps on most rays."""
    m = n // TILE
    _, centre = _rays(cam2world, intrinsics, m)
    spread = sum((dirs[i].reshape(m, TILE, m, TILE) - centre[i].reshape(m, 1, m, 1)) ** 2
                 for i in range(3))
    spread = np.sqrt(spread.max(axis=(1, 3)).reshape(-1)) * 1.01 + 1e-6
    distance = float(np.sqrt(origin @ origin))
    t = np.full(m * m, max(distance - BOUND_RADIUS, 0), dtype=np.float32)
    near = np.zeros(m * m, dtype=bool)
    active = np.arange(m * m)
    for _ in range(MAX_STEPS):
        if active.size == 0:
            break
        ta, d = t[active], centre[:, active]
        gap = scene.sdf(*(origin[i] + ta * d[i] for i in range(3))) - ta * spread[active]
        close = gap < CONE_EPS
        near[active[close]] = True
        t[active] += np.where(close, 0, gap / (1 + spread[active]))
        active = active[~close & (t[active] < distance + BOUND_RADIUS)]
    near[active] = True
    start = np.where(near, t, np.inf).reshape(m, 1, m, 1)
    return np.broadcast_to(start, (m, TILE, m, TILE)).reshape(-1)


def _trace(scene, origin, dirs, start):
    """Sphere tracing from `start` inside the bounding sphere (BOUND_RADIUS): hit mask and hit
    points [3, hits]. Rays still marching after MAX_STEPS graze a silhouette and count as
    misses. The marching rays are kept packed: each step compresses their arrays instead of
    gathering from the full image."""
    b = dirs[0] * origin[0] + dirs[1] * origin[1] + dirs[2] * origin[2]
    disc = b * b - (origin @ origin - BOUND_RADIUS * BOUND_RADIUS)
    half = np.sqrt(np.maximum(disc, 0))
    t_all, t_far = np.maximum(np.maximum(-b - half, 0), start), -b + half
    hit = np.zeros(len(t_all), dtype=bool)
    index = np.nonzero((disc > 0) & (t_all < t_far))[0]
    t, t_far, d = t_all[index], t_far[index], dirs[:, index]
    for _ in range(MAX_STEPS):
        if index.size == 0:
            break
        dist = scene.sdf(*(origin[i] + t * d[i] for i in range(3)))
        t += dist
        done = dist < HIT_EPS
        hit[index[done]] = True
        t_all[index[done]] = t[done]
        keep = ~done & (t < t_far)
        index, t, t_far, d = index[keep], t[keep], t_far[keep], d[:, keep]
    return hit, origin[:, None] + t_all[hit] * dirs[:, hit]


def _shade(scene, points):
    """Colour [N, 3] of surface points [3, N]: part colour under ambient + Lambertian light.
    The six distance queries of the central-difference normal also pick the part (nearest on
    average over them), which took a seventh query before."""
    eps = 1e-4
    normal = np.empty_like(points)
    total = 0
    for axis in range(3):
        step = np.zeros((3, 1), dtype=np.float32)
        step[axis] = eps
        ahead, behind = scene.distances(*(points + step)), scene.distances(*(points - step))
        total = total + ahead + behind
        normal[axis] = ahead.min(axis=0) - behind.min(axis=0)
    normal /= np.maximum(np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2), 1e-12)
    light = (LIGHT / np.linalg.norm(LIGHT)).astype(np.float32)
    lambert = np.maximum(normal[0] * light[0] + normal[1] * light[1] + normal[2] * light[2], 0)
    return scene.colours[np.argmin(total, axis=0)] * (AMBIENT + DIFFUSE * lambert)[:, None]


def _sdf_gradient(scene, points, eps=1e-4):
    """Unit gradient [3, N] of the figure's sdf at points [3, N] (central differences)."""
    grad = np.empty_like(points)
    for axis in range(3):
        step = np.zeros((3, 1), dtype=np.float32)
        step[axis] = eps
        grad[axis] = scene.sdf(*(points + step)) - scene.sdf(*(points - step))
    return grad / np.maximum(np.sqrt(grad[0] ** 2 + grad[1] ** 2 + grad[2] ** 2), 1e-12)


def volume_samples(obj, rng, count, surface_spread=(0.004, 0.02), box=0.7):
    """3D supervision for a radiance field of `obj`: world points [count, 3], their signed
    distances [count] and colours [count, 3] (volume_targets: the shading of the nearest part
    under the fixed light, with the normal of the distance field).

    Half the points lie near the surface (points of the bounding ball pulled onto it along the
    gradient, then moved by Gaussian noise of each scale in `surface_spread`), half are uniform
    in the cube [-box, box]^3, which holds the renderer's samples from every data camera: the
    surface is where images are decided, the rest is where stray density must be kept out,
    including beyond the tri-planes' [-0.5, 0.5]^3, where the decoder sees zero features.
    Shading depends on position only (fixed light, no specular), so one colour per point is
    exact for every view."""
    scene = _Scene(obj)
    near = count // 2
    p = rng.normal(size=(3, near)).astype(np.float32)
    p *= BOUND_RADIUS * rng.uniform(size=near).astype(np.float32) ** (1 / 3) / np.sqrt(
        (p * p).sum(0))
    for _ in range(4):                    # projection: the sdf is (close to) a distance
        p -= scene.sdf(*p) * _sdf_gradient(scene, p)
    spread = np.asarray(surface_spread, dtype=np.float32)[rng.integers(len(surface_spread),
                                                                       size=near)]
    p += rng.normal(size=p.shape).astype(np.float32) * spread
    far = rng.uniform(-box, box, size=(3, count - near)).astype(np.float32)
    points = np.concatenate([p, far], axis=1)
    return (points.T.copy(), *_targets(scene, points))


def volume_targets(obj, points):
    """Signed distance [N] and colour [N, 3] (float32) of the figure at world points [N, 3]:
    where a view's ray first enters the figure, that colour is the one its render shows."""
    return _targets(_Scene(obj), np.ascontiguousarray(np.asarray(points, dtype=np.float32).T))


def _targets(scene, points):
    """volume_targets for points [3, N] of a _Scene."""
    return scene.sdf(*points), _shade(scene, points)


def render_object(obj, cam2world, intrinsics, resolution, supersample=2):
    """uint8 [R, R, 3] image of `obj` (white background) from an OpenCV cam2world [4, 4] and
    normalised intrinsics [3, 3]; 2x2 supersampled, or one ray per pixel with `supersample=1`
    (about 3x faster, aliased edges)."""
    if supersample not in (1, 2):
        raise ValueError(f'supersample must be 1 or 2, not {supersample}')
    n = supersample * resolution
    scene = _Scene(obj)
    origin, dirs = _rays(cam2world, intrinsics, n)
    start = _cone_starts(scene, origin, dirs, n, cam2world, intrinsics)
    hit, points = _trace(scene, origin, dirs, start)
    image = np.ones((n * n, 3), dtype=np.float32)
    image[hit] = _shade(scene, points)
    if supersample == 2:
        # The four samples of a pixel as strided views: ndarray.mean over axes (1, 3) is 4x slower.
        sub = image.reshape(resolution, 2, resolution, 2, 3)
        image = (sub[:, 0, :, 0] + sub[:, 0, :, 1] + sub[:, 1, :, 0] + sub[:, 1, :, 1]) / 4
    return np.rint(np.clip(image.reshape(resolution, resolution, 3), 0, 1) * 255).astype(np.uint8)


def render_label(obj, label, resolution, supersample=2):
    """render_object with the camera given as a 25-float label."""
    label = np.asarray(label, dtype=np.float64)
    return render_object(obj, label[:16].reshape(4, 4), label[16:].reshape(3, 3), resolution,
                         supersample)


def sample(index, seed=0):
    """The (object, label) of image `index`: reproducible from (seed, index) alone."""
    rng = np.random.default_rng([seed, index])
    return random_object(rng), random_camera(rng)


def available_cores():
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _render_job(job):
    """A worker's task: (object, label, resolution) -> image. Plain numpy with no matrix
    products, so each worker runs one thread and never touches torch's thread pools."""
    return render_label(*job)


def _ignore_interrupt():
    """Pool initializer: Ctrl-C reaches the whole process group, but only the parent should act
    on it (cancel, shut the pool down, leave no output) instead of every worker dying noisily."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _in_order(fn, items, workers):
    """Yield (item, fn(item)) in the order of `items`, computed in `workers` processes when
    more than one. At most two items per worker are in flight, so memory stays flat when the
    consumer is slower; on any exit (error, Ctrl-C, the consumer closing the generator) the
    queued work is cancelled and the pool shut down."""
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = concurrent.futures.ProcessPoolExecutor(workers, initializer=_ignore_interrupt)
    try:
        pending = collections.deque()
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * workers:
                item, future = pending.popleft()
                yield item, future.result()
        for item, future in pending:
            yield item, future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def generate(resolution, count, seed=0, workers=1):
    """Yield (name, uint8 [R, R, 3] image, float32 label [25]) for images 0 .. count-1, in
    order, rendered in `workers` processes; the images do not depend on `workers` (each comes
    from (seed, index) alone, sampled here and rendered there)."""
    jobs = ((*sample(index, seed), resolution) for index in range(count))
    for index, ((_, label, _), image) in enumerate(
            _in_order(_render_job, jobs, min(workers, count))):
        yield f'toy{index:08d}.png', image, label
