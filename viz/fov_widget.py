"""Field of view in degrees (official convention, focal = 1 / (tan(fov/2) * 1.414))."""
from imgui_bundle import imgui

from eg3d_runtime.configs import FFHQ_FOV_DEGREES

from .gui_helpers import button, label


class FovWidget:
    def __init__(self, viz):
        self.viz = viz
        self.default = FFHQ_FOV_DEGREES
        self.fov = self.default

    def set_default(self, fov):
        self.default = self.fov = fov

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('FOV', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        _, self.fov = imgui.slider_float('##fov', self.fov, 12, 45, '%.2f degrees')
        imgui.same_line()
        if button('Snap##fov', width=viz.button_w):
            self.fov = float(round(self.fov))
        imgui.same_line()
        if button('Reset##fov', width=viz.button_w):
            self.fov = self.default

    def render_fields(self):
        return {'fov_degrees': self.fov}
