"""Conditioning pose: the camera the mapping network is conditioned on (frontal by default).
For PanoHead networks it is PanoHead's `--pose_cond`: the yaw in degrees, 90 frontal, at the
frontal pitch (docs/panohead-reference.md 4)."""
import math

from imgui_bundle import imgui

from eg3d_runtime.cameras import pose_cond_yaw, wrap_yaw

from .gui_helpers import button, label, tooltip, yaw_pitch_row


class CondPoseWidget:
    def __init__(self, viz, pose_cond=None):
        self.viz = viz
        self.yaw = wrap_yaw(pose_cond_yaw(pose_cond)) if pose_cond is not None else 0.0
        self.pitch = 0.0

    @property
    def pose_cond(self):
        """The yaw in PanoHead's --pose_cond degrees, in [0, 360)."""
        return (math.degrees(self.yaw) + 90) % 360

    def __call__(self, show=True):
        if not show:
            return
        if self.viz.network.panohead:
            self._pose_cond_row()
            return
        self.yaw, self.pitch, reset = yaw_pitch_row(
            self.viz, 'Cond pose', 'cond', self.yaw, self.pitch,
            tip='Camera the latent is conditioned on; no effect on networks trained without '
                'pose conditioning (ShapeNet)')
        self.yaw = wrap_yaw(self.yaw)
        if reset:
            self.yaw = self.pitch = 0.0

    def _pose_cond_row(self):
        viz = self.viz
        label('Pose cond', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        changed, degrees = imgui.drag_float('##pose_cond', self.pose_cond, 0.5, 0, 360, '%.0f deg')
        tooltip("Yaw of the camera the latent is conditioned on, as PanoHead's --pose_cond: 90 "
                'is frontal, 0 and 180 the sides (its training saw 0 to 180)')
        if changed:
            self.yaw, self.pitch = wrap_yaw(pose_cond_yaw(degrees)), 0.0
        imgui.same_line()
        if button('Snap##pose_cond', width=viz.button_w):
            self.yaw = wrap_yaw(pose_cond_yaw(round(self.pose_cond / 15) * 15))
        imgui.same_line()
        if button('Reset##pose_cond', width=viz.button_w):
            self.yaw = self.pitch = 0.0

    def render_fields(self):
        return {'cond_yaw': self.yaw,
                'cond_pitch': 0.0 if self.viz.network.panohead else self.pitch}
