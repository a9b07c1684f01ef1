"""Latent: a seed, or a point on the seed grid (drag across it: neighbours blend), animation."""
from imgui_bundle import imgui

from eg3d_runtime.frames.frame_renderer import SEED_GRID_WIDTH

from .gui_helpers import button, label

DRAG_SPEED = 0.04   # grid cells per font-size of mouse movement


class LatentWidget:
    def __init__(self, viz, seed=0):
        self.viz = viz
        self.default_seed = seed
        self.x, self.y = float(seed), 0.0
        self.anim = False
        self.speed = 0.25
        self.seed_field_pos = None
        self.ws_file = None          # a saved latent shown instead of the seeds

    def use_ws_file(self, path):
        self.ws_file = path

    @property
    def seed(self):
        return round(self.x) + round(self.y) * SEED_GRID_WIDTH

    def set_seed(self, seed):
        self.x, self.y = float(seed % SEED_GRID_WIDTH), float(seed // SEED_GRID_WIDTH)

    def drag(self, dx, dy):
        scale = DRAG_SPEED / self.viz.font_size
        self.x += dx * scale
        self.y += dy * scale

    def __call__(self, show=True):
        if self.anim:
            self.x += self.viz.window.frame_delta * self.speed
        if not show:
            return
        viz = self.viz
        label('Latent', viz.label_w)
        if self.ws_file:
            imgui.text_disabled(self.ws_file)
            imgui.same_line()
            if button('Seeds##latent', width=viz.button_w):
                self.ws_file = None
            return
        imgui.set_next_item_width(viz.button_w * 2)
        changed, seed = imgui.input_int('##seed', self.seed, 1, 10)
        self.seed_field_pos = imgui.get_item_rect_min()     # where tests click to type a seed
        if changed:
            self.set_seed(max(seed, 0))
        imgui.same_line()
        imgui.set_next_item_width(viz.field_w - viz.button_w * 2 - viz.spacing)
        changed, values = imgui.drag_float2('##frac', [self.x, self.y], 0.01, 0, 1e6, '%.2f')
        if changed:
            self.x, self.y = max(values[0], 0.0), max(values[1], 0.0)
        imgui.same_line()
        if button('Snap##latent', width=viz.button_w):
            self.x, self.y = float(round(self.x)), float(round(self.y))
        imgui.same_line()
        if button('Reset##latent', width=viz.button_w):
            self.set_seed(self.default_seed)
            self.anim = False
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.text_disabled('right-drag the view')
        imgui.same_line()
        _, self.anim = imgui.checkbox('Animate', self.anim)
        imgui.same_line()
        imgui.set_next_item_width(-1)
        _, self.speed = imgui.slider_float('##speed', self.speed, -5, 5, 'speed %.2f',
                                           imgui.SliderFlags_.logarithmic)

    def render_fields(self):
        return {'seed_x': self.x, 'seed_y': self.y, 'ws_file': self.ws_file}
