"""Export the 3D shape of EG3D seeds as meshes (marching cubes) or density volumes.

    python shapes_export.py --network PKL --seeds 0-3 --colors --format glb --outdir shapes

Meshes are in the world coordinates of the rendering camera frame (they overlay rendered images),
with outward normals; --voxel-units gives the official PLY convention instead. --format mrc
writes the official gen_samples.py --shapes volume (for ChimeraX: surface at level 10).
Every seed's file is written, or none; files of an earlier run are replaced only with --force.
"""
import argparse
import os
import sys
import time

from .. import arguments, progress
from ..shapes.options import (MESH_FORMATS, MIN_RESOLUTION, OFFICIAL_LEVEL, VOLUME_FORMATS,
                              ShapeExportError, ShapeOptions)
from .ending import run_command


class ShapeProgress:
    """An export's progress(fraction, stage) as a percentage bar (eg3d_runtime.progress)."""

    def __init__(self, label):
        self.bar = progress.bar(label, total=100, bar_format='{desc}: {percentage:3.0f}%|{bar}| '
                                '{postfix}')

    def __call__(self, fraction, stage):
        self.bar.set_postfix_str(stage, refresh=False)
        progress.advance(self.bar, round(100 * fraction))

    def close(self):
        self.bar.close()


def build_parser():
    p = arguments.Parser(prog='python shapes_export.py', description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    arguments.network_option(source)
    source.add_argument('--cfg', choices=['ffhq', 'afhq', 'shapenet'],
                        help='a randomly initialised full-size network instead (for --bench)')
    p.add_argument('--seeds', type=arguments.seeds, default=[0], help='e.g. 0-3,7 (default 0)')
    p.add_argument('--psi', type=arguments.psi, default=1.0, help='truncation psi (default 1)')
    p.add_argument('--cutoff', type=arguments.cutoff, default=14,
                   help='truncation cutoff (default 14)')
    p.add_argument('--resolution', type=arguments.integer(MIN_RESOLUTION), default=512,
                   help='grid points per axis (default 512)')
    p.add_argument('--level', type=arguments.number(), default=OFFICIAL_LEVEL,
                   help='iso level in raw density units (default 10, as the official recipe)')
    p.add_argument('--format', choices=MESH_FORMATS + VOLUME_FORMATS, default='ply',
                   help='mesh (ply, obj, glb, stl) or density volume (mrc: the official file; '
                        'npy: float32 [x, y, z] on the regular grid) (default ply)')
    p.add_argument('--colors', action='store_true', help='vertex colours from the decoder')
    p.add_argument('--smooth', action='store_true', help='Taubin smoothing (keeps the volume)')
    p.add_argument('--largest-component', action='store_true',
                   help='keep only the largest connected piece')
    p.add_argument('--voxel-units', action='store_true',
                   help='official PLY convention: vertex = (z, y, N-1-x) voxel indices')
    p.add_argument('--coarse-to-fine', action='store_true',
                   help='sample the fine grid only near the surface (faster; may miss features '
                        'thinner than 4 voxels)')
    p.add_argument('--trim', type=arguments.integer(0), default=None,
                   help='voxels cleared at each face of the cube (default int(30*res/256), as '
                        'official: 60 at 512)')
    p.add_argument('--outdir', type=arguments.output_dir, default='shapes',
                   help='output directory (default shapes)')
    p.add_argument('--force', action='store_true', help='replace the shapes of an earlier run')
    p.add_argument('--device', type=arguments.device, default=None,
                   help='cpu or cuda (default: cuda when available)')
    p.add_argument('--bench', action='store_true',
                   help='print wall seconds per stage, CPU seconds and peak RSS')
    arguments.precision_option(p)
    p.add_check(_options_fit)
    return p


def shape_options(args):
    return ShapeOptions(resolution=args.resolution, level=args.level, format=args.format,
                        colors=args.colors, smooth=args.smooth,
                        largest_component=args.largest_component, voxel_units=args.voxel_units,
                        coarse_to_fine=args.coarse_to_fine, trim=args.trim, psi=args.psi,
                        cutoff=args.cutoff)


def _options_fit(args):
    shape_options(args).check()     # ValueError: combinations that cannot be (stl colours ...)


def peak_rss_gib():
    import resource     # Unix only, and only needed by --bench
    unit = 1 if sys.platform == 'darwin' else 1024        # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**30


def run(args):
    """Every seed's shape, or none: written into a staging folder and moved into place together
    (files.Outputs); the memory is checked before the network loads."""
    import torch

    from ..configs import build_generator
    from ..devices import default_device
    from ..engine import Session
    from ..files import Outputs
    from ..network_path import network_path
    from ..pickles import load_generator
    from ..shapes import check_memory, export_shape
    options = shape_options(args)
    outputs = Outputs(args.outdir, [f'seed{seed:04d}.{args.format}' for seed in args.seeds],
                      args.force)
    outputs.check()
    check_memory(options)           # before the network loads, so the error comes at once
    device = torch.device(args.device or default_device())
    started = time.perf_counter()
    if args.network:
        G = load_generator(network_path(args.network), device=device)
    else:
        torch.manual_seed(0)        # the same random network every run
        G = build_generator(args.cfg).to(device)
    session = Session(G, device, args.precision)
    backbone = session.precision_in_use(superresolution=False).backbone
    print(f'precision: backbone {backbone} ({args.precision}; shapes need no '
          f'super-resolution)')
    if args.bench:
        print(f'bench: network ready in {time.perf_counter() - started:.1f} s, '
              f'{torch.get_num_threads()} threads, device {device}')
    with outputs:
        for seed in args.seeds:
            name = f'seed{seed:04d}.{args.format}'
            bar = ShapeProgress(f'seed{seed:04d}')
            started, cpu = time.perf_counter(), time.process_time()
            try:
                result = export_shape(session, seed, outputs.path(name), options, progress=bar)
            except MemoryError:
                raise ShapeExportError(f'resolution {args.resolution}: out of memory (use a '
                                       'smaller --resolution)') from None
            except ShapeExportError as e:      # name the output, not its staging file
                raise ShapeExportError(str(e).replace(str(outputs.path(name)),
                                                      os.path.join(args.outdir, name))) from None
            finally:
                bar.close()
            size = f' ({result.vertices} vertices, {result.faces} faces)' if result.faces else ''
            print(f'made {name}{size}')
            if args.bench:
                stages = ', '.join(f'{k} {v:.1f}' for k, v in result.seconds.items())
                print(f'bench: seed{seed:04d} {args.resolution}^3 {args.format}'
                      f'{" coarse-to-fine" if args.coarse_to_fine else " dense"}'
                      f'{" colors" if args.colors else ""}: '
                      f'{time.perf_counter() - started:.1f} s ({stages}; '
                      f'{time.process_time() - cpu:.1f} s CPU), peak RSS {peak_rss_gib():.2f} GiB')
    print(f"wrote {', '.join(os.path.join(args.outdir, name) for name in outputs.names)}")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..pickles import PickleLoadError
    return run_command(run, args, (PickleLoadError, ShapeExportError),
                       'interrupted; no shape was kept')


if __name__ == '__main__':
    sys.exit(main())
