"""Layers & channels: pick any intermediate layer of the generator and look at its channels.
Hooks are attached only while this section is open."""
from imgui_bundle import imgui

from gui_utils import imgui_compat

from .gui_helpers import button, label

OUTPUT = 'output (render type above)'


class LayerWidget:
    def __init__(self, viz):
        self.viz = viz
        self.open = False
        self.reset()

    def reset(self):
        self.layer = None
        self.channel = 0
        self.rgb = True
        self.normalize = False
        self.gain_db = 0.0

    def __call__(self, show=True):
        self.open = show
        if not show:
            return
        viz = self.viz
        layers = viz.layers
        if viz.render_widget.cache_backbone:
            imgui.text_disabled('Backbone layers are hidden while tri-planes are reused '
                                '(Rendering > Cache).')
        imgui.begin_child('##layers', imgui.ImVec2(0, viz.font_size * 9),
                          imgui_compat.CHILD_BORDERS)
        if imgui.selectable(OUTPUT, self.layer is None)[0]:
            self.layer = None
        for name, shape in layers:
            text = f'{name}  {"x".join(str(d) for d in shape[1:])}  {shape[0]} ch'
            if imgui.selectable(text, self.layer == name)[0]:
                self.layer = name
        imgui.end_child()
        channels = dict(layers).get(self.layer, (1,))[0]
        label('Channel', viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        _, self.channel = imgui.slider_int('##channel', self.channel, 0, max(channels - 1, 0),
                                           f'%d / {channels}')
        imgui.same_line()
        if button('Reset##layer', width=viz.button_w):
            self.reset()
        imgui.set_cursor_pos_x(viz.label_w)
        _, self.rgb = imgui.checkbox('RGB (3 channels)', self.rgb)
        imgui.same_line()
        _, self.normalize = imgui.checkbox('Normalize', self.normalize)
        imgui.same_line()
        imgui.set_next_item_width(-1)
        _, self.gain_db = imgui.slider_float('##gain', self.gain_db, -40, 40, 'gain %+.0f dB')

    def render_fields(self):
        return {'layer_view': self.open, 'layer': self.layer, 'layer_channel': self.channel,
                'layer_rgb': self.rgb, 'layer_normalize': self.normalize,
                'layer_gain_db': self.gain_db}
