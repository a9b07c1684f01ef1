"""Style mixing: replace chosen ws entries with those of another seed."""
from imgui_bundle import imgui

from .gui_helpers import button, label


class StylemixWidget:
    def __init__(self, viz):
        self.viz = viz
        self.seed = 1000
        self.anim = False
        self.enabled = []       # one flag per ws index, sized when a network is known

    def __call__(self, show=True):
        num_ws = self.viz.network.num_ws
        if len(self.enabled) != num_ws:
            self.enabled = [False] * num_ws
        if self.anim:
            self.seed += 1
        if not show:
            return
        viz = self.viz
        label('Stylemix', viz.label_w)
        imgui.set_next_item_width(viz.button_w * 2)
        changed, seed = imgui.input_int('##mixseed', self.seed, 1, 10)
        if changed:
            self.seed = max(seed, 0)
        imgui.same_line()
        _, self.anim = imgui.checkbox('Anim##mix', self.anim)
        imgui.same_line()
        if button('Reset##mix', width=viz.button_w):
            self.enabled = [False] * num_ws
            self.anim = False
        imgui.set_cursor_pos_x(viz.label_w)
        for i in range(num_ws):
            if i:
                imgui.same_line()
            _, self.enabled[i] = imgui.checkbox(f'##ws{i}', self.enabled[i])
            if imgui.is_item_hovered():
                imgui.set_tooltip(f'w {i}: take it from the mixing seed')

    def render_fields(self):
        idx = tuple(i for i, on in enumerate(self.enabled) if on)
        return {'stylemix_seed': self.seed, 'stylemix_idx': idx}
