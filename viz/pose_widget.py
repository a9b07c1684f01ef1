"""Camera pose: yaw/pitch (drag the viewport to orbit), snap, and the look-at point."""
from imgui_bundle import imgui

from eg3d_runtime.cameras import wrap_yaw
from eg3d_runtime.configs import DEFAULT_CAMERA, FAMILY_CAMERAS

from .gui_helpers import label, yaw_pitch_row

DRAG_SPEED = 0.03           # radians per font-size of mouse movement, as the official viewer


def _family_pivot(name, family):
    """('FFHQ (0, 0, 0.2)', (0.0, 0.0, 0.2)): a family's look-at point and its label."""
    pivot = tuple(float(v) for v in FAMILY_CAMERAS[family].pivot)
    return f'{name} ({", ".join(f"{v:g}" for v in pivot)})', pivot


# The look-at points to choose from: the network's own, each EG3D family's, or one typed in.
PIVOTS = {'Auto (network)': None,
          **dict(_family_pivot(name, family) for name, family in
                 (('FFHQ', 'ffhq'), ('AFHQ', 'afhq'), ('ShapeNet', 'shapenet'))),
          'Manual': 'manual'}


class PoseWidget:
    def __init__(self, viz, yaw=0.0, pitch=0.0):
        self.viz = viz
        self.default = (yaw, pitch)
        self.yaw, self.pitch = yaw, pitch
        self.pivot_choice = 0
        self.manual_pivot = [float(v) for v in DEFAULT_CAMERA.pivot]

    def drag(self, dx, dy):
        """Orbit from a mouse drag of (dx, dy) pixels in the viewport."""
        scale = DRAG_SPEED / self.viz.font_size
        self.yaw = wrap_yaw(self.yaw - dx * scale)          # round and round, PanoHead's backs too
        self.pitch = min(max(self.pitch - dy * scale, -1.5), 1.5)

    def reset(self):
        self.yaw, self.pitch = self.default
        self.pivot_choice = 0

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        yaw, self.pitch, reset = yaw_pitch_row(viz, 'Pose', 'pose', self.yaw, self.pitch)
        self.yaw = wrap_yaw(yaw)
        if reset:
            self.reset()
        label('Look-at', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        names = list(PIVOTS)
        _, self.pivot_choice = imgui.combo('##pivot', self.pivot_choice, names)
        if PIVOTS[names[self.pivot_choice]] == 'manual':
            imgui.same_line()
            imgui.set_next_item_width(-1)
            _, self.manual_pivot = imgui.drag_float3('##manual_pivot', self.manual_pivot, 0.005,
                                                     -1, 1, '%.3f')

    def render_fields(self):
        pivot = PIVOTS[list(PIVOTS)[self.pivot_choice]]
        if pivot == 'manual':
            pivot = tuple(self.manual_pivot)
        return {'yaw': self.yaw, 'pitch': self.pitch, 'lookat': pivot}
