"""The keyframes of an interpolation video: the seeds laid out on the grid as the official
gen_videos.py does, and the cubic spline that joins their ws."""
import numpy as np

from . import VideoError

WRAPS = 2   # keyframe copies on each side of the spline, as official


def keyframe_seeds(seeds, grid, num_keyframes=None, shuffle_seed=None):
    """Seeds [grid_h, grid_w, num_keyframes] laid out as official: the list repeated to fill,
    optionally shuffled, cell-major (each cell's keyframes consecutive)."""
    grid_w, grid_h = grid
    if num_keyframes is None:
        if len(seeds) % (grid_w * grid_h):
            raise VideoError(f'the number of seeds ({len(seeds)}) must be divisible by grid W*H '
                             f'({grid_w * grid_h})')
        num_keyframes = len(seeds) // (grid_w * grid_h)
    if num_keyframes < 1:
        raise VideoError('--num-keyframes must be at least 1')
    all_seeds = np.array([seeds[i % len(seeds)] for i in range(num_keyframes * grid_h * grid_w)],
                         dtype=np.int64)
    if shuffle_seed is not None:
        np.random.RandomState(shuffle_seed).shuffle(all_seeds)
    return all_seeds.reshape(grid_h, grid_w, num_keyframes)


def interpolator(keyframe_ws):
    """keyframe_ws [K, ...] -> f(t) giving ws at keyframe position t (float32), a cubic spline
    through the keyframes repeated WRAPS times on both sides, so the loop closes smoothly."""
    k = len(keyframe_ws)
    x = np.arange(-k * WRAPS, k * (WRAPS + 1))
    y = np.tile(keyframe_ws, [2 * WRAPS + 1] + [1] * (keyframe_ws.ndim - 1))
    # imported here: the viewer imports this module (orbit capture), and scipy.interpolate was
    # a third of its start-up imports (2.4 of 7 s measured on 2 busy cores)
    import scipy.interpolate
    spline = scipy.interpolate.interp1d(x, y, kind='cubic', axis=0)
    return lambda t: spline(t).astype(np.float32)
