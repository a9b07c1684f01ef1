"""What a shape export is asked to do (ShapeOptions, checked before any work), its errors and
result, and whether the machine has the memory for it: everything the command line and the
viewer settle before a network is touched."""
import dataclasses

from ..memory import InsufficientMemory, require

BORDER_VALUE = -1000.0          # official value of the cleared border (docs/eg3d-reference.md 6.1)
OFFICIAL_LEVEL = 10.0           # official iso level, raw sigma units
MESH_FORMATS = ('ply', 'obj', 'glb', 'stl')
VOLUME_FORMATS = ('mrc', 'npy')
CHUNK_POINTS = 1 << 16          # points per decoder evaluation: bounds working memory, fits caches
MIN_RESOLUTION = 8


class ShapeExportError(Exception):
    """A problem the user can fix (no surface at the level, not enough memory, unwritable
    directory); the message is one line naming the file or option."""


class ExportCancelled(Exception):
    """Raised when the cancel flag is set; the output file is not created."""


@dataclasses.dataclass
class ShapeOptions:
    resolution: int = 512
    level: float = OFFICIAL_LEVEL
    format: str = 'ply'
    colors: bool = False
    smooth: bool = False
    largest_component: bool = False
    voxel_units: bool = False
    coarse_to_fine: bool = False
    trim: int | None = None     # voxels cleared at every face of the cube; None: official amount
    psi: float = 1.0            # truncation, used when exporting a seed
    cutoff: int | None = 14

    @property
    def trim_voxels(self):
        """Official border: int(30 N / 256) voxels (60 at 512). Meshes always clear at least the
        outermost layer, so they are closed where the head meets the cube."""
        trim = official_trim(self.resolution) if self.trim is None else self.trim
        return max(trim, 1) if self.format in MESH_FORMATS else trim

    def check(self):
        """Raise ValueError, one line naming the option as the command line spells it, for
        impossible values and combinations."""
        if self.format not in MESH_FORMATS + VOLUME_FORMATS:
            raise ValueError(f"--format {self.format}: must be one of "
                             f"{', '.join(MESH_FORMATS + VOLUME_FORMATS)}")
        if self.resolution < MIN_RESOLUTION:
            raise ValueError(f'--resolution {self.resolution}: must be at least {MIN_RESOLUTION}')
        most = (self.resolution - 1) // 2 - 1
        if self.trim is not None and not 0 <= self.trim <= most:
            raise ValueError(f'--trim {self.trim}: leaves nothing of a {self.resolution}^3 grid '
                             f'(must be from 0 to {most})')
        if self.format == 'stl' and self.colors:
            raise ValueError('--colors: stl files cannot hold colours (use ply, obj or glb)')
        if self.format in VOLUME_FORMATS:
            mesh_only = [name for name in ('colors', 'smooth', 'largest_component', 'voxel_units',
                                           'coarse_to_fine') if getattr(self, name)]
            if mesh_only:
                options = ', '.join('--' + name.replace('_', '-') for name in mesh_only)
                raise ValueError(f"{options}: only for meshes, not the {self.format} volume")


@dataclasses.dataclass
class ExportResult:
    path: str
    vertices: int = 0
    faces: int = 0
    seconds: dict = dataclasses.field(default_factory=dict)   # stage -> wall seconds


def official_trim(resolution):
    return int(30 * resolution / 256)


def required_memory(options):
    """A generous estimate of the bytes an export needs beyond the loaded network: the volume,
    the folded tables, working chunks and, for meshes, a surface of ~10 N^2 vertices."""
    n = options.resolution
    trim = options.trim_voxels
    if options.format == 'mrc':
        return 2 * n * n * 4 + (256 << 20)
    side = n if options.format == 'npy' else n - 2 * trim + 2
    mesh = 0 if options.format in VOLUME_FORMATS else 10 * n * n * 200
    return side ** 3 * 4 + 2 * n * n * 64 * 4 + mesh + (256 << 20)


def check_memory(options):
    """ShapeExportError when the machine lacks the memory `required_memory` estimates."""
    try:
        require(required_memory(options), f'resolution {options.resolution}',
                'use a smaller --resolution')
    except InsufficientMemory as e:
        raise ShapeExportError(str(e)) from None
