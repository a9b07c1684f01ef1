"""PanoHead's tri-grid as one lookup table (rendering/tri_grid.py is the reference), the
counterpart of render.PlaneTable: the three volumes [N, 3, D, H, W, 32] live channels-last in
one table with a zero border of one texel on every side, and one `embedding_bag` call takes
the 8 trilinear corners of all three volumes (24 rows per point), weighted. Clamping the texel
coordinates to [-1, size] (border rows are zero) reproduces `grid_sample`'s zero padding with
`align_corners=False` exactly; the sum over the volumes stands for the decoder's mean (the
1/3 is folded into the decoder)."""
import torch
import torch.nn.functional as F

from ..rendering.tri_grid import TRI_GRID_AXES


class TriGridTable:
    """Tri-grid planes [N, 3, 32 * depth, H, W] (channel c of slice d at c * depth + d)."""

    def __init__(self, planes, depth, dtype=torch.float32):
        n, p, cd, h, w = planes.shape
        assert p == 3 and cd % depth == 0, 'three planes of 32 x depth channels expected'
        c = cd // depth
        self.batch, self.channels, self.depth, self.height, self.width = n, c, depth, h, w
        dev = planes.device
        table = torch.zeros(n, p, depth + 2, h + 2, w + 2, c, dtype=dtype, device=dev)
        self._fill(table, planes)
        self.rows_per_sample = p * (depth + 2) * (h + 2) * (w + 2)
        self.table = table.view(n * self.rows_per_sample, c)
        self.device = dev
        self.dtype = dtype
        self.occupancy = {}                        # (box_warp, resolution, threshold) -> grid
        # Texel coordinates for unit box_warp: columns 0-2 x of the three volumes, 3-5 y, 6-8
        # the slice: grid_sample's ((g + 1) * size - 1) / 2 with g = 2 p / box_warp.
        sizes = (w, h, depth)
        proj = torch.zeros(3, 9, dtype=torch.float64)
        for i, axes in enumerate(TRI_GRID_AXES):
            for j, axis in enumerate(axes):
                proj[axis, 3 * j + i] = sizes[j]
        self._proj = proj.float().to(dev)
        self._offset = torch.tensor([(s - 1) / 2 for s in sizes for _ in range(3)], device=dev)
        self._lo = torch.full((9,), -1.0, device=dev)
        self._hi = torch.tensor([float(s) for s in sizes for _ in range(3)], device=dev)
        self._hi_floor = self._hi - 1
        # row of corner (x0, y0, z0) of volume p: ((z0 + 1) (H + 2) + y0 + 1) (W + 2) + x0 + 1
        row, slab = w + 2, (h + 2) * (w + 2)
        to_row = torch.zeros(9, 3, dtype=torch.float64)
        for i in range(3):
            to_row[i, i], to_row[3 + i, i], to_row[6 + i, i] = 1, row, slab
        self._to_row = to_row.float().to(dev)
        self._row_offset = torch.tensor([slab + row + 1 + q * (depth + 2) * slab
                                         for q in range(3)], dtype=torch.float32, device=dev)
        self._corner_offsets = torch.tensor(
            [dz * slab + dy * row + dx for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)],
            device=dev, dtype=torch.long)

    def _fill(self, table, planes):
        n, p, _, h, w = planes.shape
        volumes = planes.reshape(n, p, self.channels, self.depth, h, w)
        table[:, :, 1:self.depth + 1, 1:h + 1, 1:w + 1].copy_(volumes.permute(0, 1, 3, 4, 5, 2))

    def refill(self, planes):
        """Take new planes of the same shape in place (the zero border stays); False if the
        shape differs."""
        n, p, cd, h, w = planes.shape
        if (n, cd, h, w) != (self.batch, self.channels * self.depth, self.height, self.width):
            return False
        self._fill(self.table.view(n, p, self.depth + 2, h + 2, w + 2, self.channels), planes)
        self.occupancy = {}
        return True

    def sample_sum(self, coords, box_warp, batch_index=0, planes=None):
        """Points [P, 3] in world units -> [P, 32]: the SUM over the three volumes (or those
        in `planes`) of the trilinear samples (grid_sample semantics, zero outside)."""
        n = coords.shape[0]
        ixyz = torch.addmm(self._offset, coords.float(), self._proj * (1.0 / box_warp))
        ixyz = torch.maximum(ixyz, self._lo, out=ixyz)
        ixyz = torch.minimum(ixyz, self._hi, out=ixyz)
        corner = torch.minimum(ixyz.floor(), self._hi_floor)                  # [P, 9]
        frac = ixyz.sub_(corner)
        rows = torch.addmm(self._row_offset, corner, self._to_row)            # [P, 3]
        corners = self._corner_offsets
        if batch_index:
            corners = corners + batch_index * self.rows_per_sample
        idx = rows.long().unsqueeze(-1) + corners                             # [P, 3, 8]
        fx, fy, fz = frac[:, :3], frac[:, 3:6], frac[:, 6:]
        wx = torch.stack([1 - fx, fx], -1)                                    # [P, 3, 2]
        wy = torch.stack([1 - fy, fy], -1)
        wz = torch.stack([1 - fz, fz], -1)
        wgt = (wz[..., :, None, None] * wy[..., None, :, None] * wx[..., None, None, :])
        wgt = wgt.reshape(n, 3, 8)                                            # same order as idx
        if planes is not None:
            idx, wgt = idx[:, list(planes)], wgt[:, list(planes)]
        return F.embedding_bag(idx.reshape(n, -1), self.table,
                               per_sample_weights=wgt.reshape(n, -1).to(self.dtype), mode='sum')
