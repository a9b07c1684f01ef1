"""Conditioning pose: the camera the mapping network is conditioned on (frontal by default)."""
from imgui_bundle import imgui

from .gui_helpers import button, label, tooltip


class CondPoseWidget:
    def __init__(self, viz):
        self.viz = viz
        self.yaw = self.pitch = 0.0

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('Cond pose', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        changed, values = imgui.drag_float2('##cond', [self.yaw, self.pitch], 0.01, -3.2, 3.2,
                                            '%+.2f')
        tooltip('Camera the latent is conditioned on; no effect on networks trained without '
                'pose conditioning (ShapeNet)')
        if changed:
            self.yaw, self.pitch = values
        imgui.same_line()
        if button('Snap##cond', width=viz.button_w):
            self.yaw, self.pitch = round(self.yaw, 1), round(self.pitch, 1)
        imgui.same_line()
        if button('Reset##cond', width=viz.button_w):
            self.yaw = self.pitch = 0.0

    def render_fields(self):
        return {'cond_yaw': self.yaw, 'cond_pitch': self.pitch}
