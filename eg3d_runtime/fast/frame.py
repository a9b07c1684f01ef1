"""The per-camera part of a frame, on prepared pieces (a plane table, the folded decoder and
super-resolution): rays -> ray marching of every sample -> super-resolution. Also the density at
world points. Functions of their inputs only: the engine session decides what is cached."""
import torch

from . import render as fr
from . import superresolution as fsr
from .parallel import parallel_map


def chunk_points(requested, device):
    """Points per ray-marching step: `requested`, else 2M on CUDA and 64K (cache-sized) on CPU."""
    if requested:
        return requested
    return 1 << 21 if device.type == 'cuda' else 1 << 16


def occupancy(table, decoder, options, resolution, threshold):
    """Empty-space skipping grids of every sample of a table, kept with the table (it is refilled
    with new planes, which drops them)."""
    key = (options['box_warp'], resolution, threshold)
    grids = table.occupancy.get(key)
    if grids is None:
        start, end = options['ray_start'], options['ray_end']
        n = max(int(options['depth_resolution']), 2)
        delta = (end - start) / (n - 1) if not isinstance(start, str) else None
        grids = [fr.build_occupancy(table, decoder, options['box_warp'], resolution, threshold,
                                    b, delta)
                 for b in range(table.batch)]
        table.occupancy[key] = grids
    return grids


def march_batch(table, decoder, origins, directions, options, deterministic, colour_channels,
                chunk, grids, crop_margin=None):
    """Ray-march every sample of a batch -> features [N, M, k], depth [N, M, 1] (clamped to the
    batch's sample range), opacity [N, M, 1] (the summed weights). `crop_margin`: PanoHead's
    crop box (no density outside it)."""
    feats, depths, opacities, lo, hi = [], [], [], [], []
    jitter = None if deterministic else fr.draw_jitter(*origins.shape[:2], options,
                                                       origins.device)
    for n in range(origins.shape[0]):
        f, d, o, dmin, dmax = fr.render_rays(table, decoder, origins[n], directions[n], options,
                                             None if jitter is None else [u[n] for u in jitter],
                                             n, colour_channels, chunk,
                                             grids[n] if grids else None, crop_margin)
        feats.append(f)
        depths.append(d)
        opacities.append(o)
        lo.append(dmin)
        hi.append(dmax)
    depth = fr.finish_depth(torch.stack(depths), torch.stack(lo).min(), torch.stack(hi).max())
    return torch.stack(feats), depth, torch.stack(opacities)


def camera_rays(ray_sampler, c, nrr):
    """Ray origins and directions [N, nrr * nrr, 3] of cameras c [N, 25]."""
    return ray_sampler(c[:, :16].view(-1, 4, 4), c[:, 16:25].view(-1, 3, 3), nrr)


def camera_frame(ray_sampler, sr, table, decoder, folded_sr, workspace, nrr, options,
                 deterministic, chunk, grids=None, lap=None):
    """The per-camera part of a frame as a function of c only, c [N, 25] -> {'image_raw',
    'image_depth'} plus 'image' when `folded_sr` (of super-resolution module `sr`) is given.
    Capturable in a CUDA graph (then without `lap`): no host synchronisation, static shapes;
    weight folding and table lookups happen before. It holds G's modules, not G (a captured
    graph keeps it). `lap(stage)` is called as 'march' and 'superresolution' end."""
    lap = lap or (lambda stage: None)
    k = None if folded_sr is not None else 3   # without super-resolution only RGB is shown

    def frame(c):
        origins, directions = camera_rays(ray_sampler, c, nrr)
        n = origins.shape[0]
        feats, depth, _ = march_batch(table, decoder, origins, directions, options,
                                      deterministic, k, chunk, grids)
        lap('march')
        feature_image = feats.view(n, nrr, nrr, -1)                           # NHWC
        out = {'image_raw': feature_image[..., :3].permute(0, 3, 1, 2).contiguous(),
               'image_depth': depth.view(n, 1, nrr, nrr)}
        if folded_sr is not None:
            out['image'], raw = fsr.run(sr, folded_sr, feature_image, workspace)
            if raw is not None:                  # the official in-place quirk (superresolution.py)
                out['image_raw'] = raw
            lap('superresolution')
        return out
    return frame


def sample_points(table, decoder, coordinates, box_warp, chunk):
    """Raw density [N, P] and colour features [N, P, C] at world points [N, P, 3]."""
    sigmas, rgbs = [], []
    for n in range(coordinates.shape[0]):
        pts = coordinates[n]
        # parallel_map has called the lambda for every chunk before the loop moves on.
        parts = parallel_map(
            lambda i: decoder(table.sample_sum(pts[i:i + chunk], box_warp, n)),  # noqa: B023
            range(0, pts.shape[0], chunk), pts.device)
        sigmas.append(torch.cat([p[0] for p in parts]))
        rgbs.append(torch.cat([p[1] for p in parts]))
    return torch.stack(sigmas), torch.stack(rgbs)
