"""Render type, neural rendering resolution, depth sample multipliers and the backbone cache."""
from imgui_bundle import imgui

from .gui_helpers import button, label, tooltip
from .render_args import RENDER_TYPES

NRR_CHOICES = (32, 48, 64, 96, 128, 160, 192, 256)
MULTIPLIERS = (0.25, 0.5, 1.0, 2.0, 4.0)


class RenderWidget:
    def __init__(self, viz, render_type='image', nrr=None):
        self.viz = viz
        self.render_type = render_type
        self.nrr = nrr                   # None = the network's own
        self.depth_mult = 1.0
        self.importance_mult = 1.0
        self.cache_backbone = True

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('Render type', viz.label_w)
        keys = list(RENDER_TYPES)
        imgui.set_next_item_width(viz.field_w)
        changed, idx = imgui.combo('##rtype', keys.index(self.render_type),
                                   list(RENDER_TYPES.values()))
        if changed:
            self.render_type = keys[idx]
        default_nrr = viz.network.default_nrr
        label('Neural res.', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        choices = sorted(set(NRR_CHOICES) | {default_nrr} | ({self.nrr} if self.nrr else set()))
        current = self.nrr or default_nrr
        names = [f'{n} x {n}' + ('  (network default)' if n == default_nrr else '') for n in choices]
        changed, idx = imgui.combo('##nrr', choices.index(current), names)
        tooltip('Resolution of the volume rendering before super-resolution')
        if changed:
            self.nrr = None if choices[idx] == default_nrr else choices[idx]
        imgui.same_line()
        if button('Reset##nrr', width=viz.button_w):
            self.nrr = None
        label('Samples', viz.label_w)
        for name, attr, base in (('depth', 'depth_mult', viz.network.depth_resolution),
                                 ('importance', 'importance_mult',
                                  viz.network.depth_resolution_importance)):
            value = getattr(self, attr)
            imgui.set_next_item_width(viz.field_w / 2 - viz.spacing / 2)
            items = [f'{name} {m:g}x ({max(1, round(base * m))})' for m in MULTIPLIERS]
            changed, idx = imgui.combo(f'##{attr}', MULTIPLIERS.index(value), items)
            if changed:
                setattr(self, attr, MULTIPLIERS[idx])
            imgui.same_line()
        if button('Reset##samples', width=viz.button_w):
            self.depth_mult = self.importance_mult = 1.0
        label('Cache', viz.label_w)
        _, self.cache_backbone = imgui.checkbox('Reuse tri-planes while only the camera moves',
                                                self.cache_backbone)

    def render_fields(self):
        return {'render_type': self.render_type, 'nrr': self.nrr, 'depth_mult': self.depth_mult,
                'importance_mult': self.importance_mult, 'cache_backbone': self.cache_backbone}
