"""Render type, neural rendering resolution, depth sample multipliers, the backbone cache and,
for PanoHead networks, the background network."""
from imgui_bundle import imgui

from eg3d_runtime.frames.render_args import PANOHEAD_RENDER_TYPES, RENDER_TYPES

from .gui_helpers import button, label, tooltip

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
        self.background = True

    def render_types(self):
        """The render types of the networks on screen (the mask is PanoHead's; compare panels
        of other networks say they have none)."""
        viz = self.viz
        networks = [viz.network]
        if viz.comparing:
            networks += [r.network for r in viz.compare.results.values() if r.network]
        panohead = any(network.panohead for network in networks)
        return [k for k in RENDER_TYPES if panohead or k not in PANOHEAD_RENDER_TYPES]

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('Render type', viz.label_w)
        keys = self.render_types()
        if self.render_type not in keys and viz.network.generator is not None:
            self.render_type = 'image'
        imgui.set_next_item_width(viz.field_w)
        current = keys.index(self.render_type) if self.render_type in keys else 0
        changed, idx = imgui.combo('##rtype', current, [RENDER_TYPES[k] for k in keys])
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
        if viz.network.has_background:
            label('Background', viz.label_w)
            _, self.background = imgui.checkbox('Background network (PanoHead)', self.background)
            tooltip('Off: the head alone, without the background PanoHead blends in where the '
                    'rays stay transparent')

    def render_fields(self):
        return {'render_type': self.render_type, 'nrr': self.nrr, 'depth_mult': self.depth_mult,
                'importance_mult': self.importance_mult, 'cache_backbone': self.cache_backbone,
                'background': self.background}
