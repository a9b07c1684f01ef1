"""Truncation (psi, cutoff) and backbone noise (on/off, seed)."""
from imgui_bundle import imgui

from .gui_helpers import button, label


class TruncWidget:
    DEFAULTS = dict(psi=0.7, cutoff=14, noise=True, noise_seed=0)

    def __init__(self, viz, psi=None):
        self.viz = viz
        self.__dict__.update(self.DEFAULTS)
        if psi is not None:
            self.psi = psi

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        num_ws = viz.network.num_ws
        label('Truncate', viz.label_w)
        imgui.set_next_item_width(viz.field_w / 2 - viz.spacing / 2)
        _, self.psi = imgui.slider_float('##psi', self.psi, -1, 2, 'psi %.2f')
        imgui.same_line()
        imgui.set_next_item_width(viz.field_w / 2 - viz.spacing / 2)
        _, self.cutoff = imgui.slider_int('##cutoff', self.cutoff, 0, num_ws, 'cutoff %d')
        imgui.same_line()
        if button('Reset##trunc', width=viz.button_w):
            self.__dict__.update(self.DEFAULTS)
        label('Noise', viz.label_w)
        _, self.noise = imgui.checkbox('##noise', self.noise)
        imgui.same_line()
        imgui.set_next_item_width(viz.button_w * 2)
        changed, seed = imgui.input_int('seed (0 = const noise)', self.noise_seed, 1, 10)
        if changed:
            self.noise_seed = max(seed, 0)

    def render_fields(self):
        mode = 'none' if not self.noise else ('const' if self.noise_seed == 0 else 'random')
        return {'psi': self.psi, 'cutoff': self.cutoff, 'noise_mode': mode,
                'noise_seed': self.noise_seed}
