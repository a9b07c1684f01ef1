"""Compare: turn panels on, choose each panel's network and neural rendering resolution, and the
difference and wipe views."""
from imgui_bundle import imgui

from .compare import MAX_PANELS, Panel
from .gui_helpers import button, label
from .render_widget import NRR_CHOICES


class CompareWidget:
    def __init__(self, viz, pkls=(), enabled=False):
        self.viz = viz
        self.enabled = False
        self.panels = [Panel(str(p)) for p in pkls][:MAX_PANELS]
        self.new_path = ''
        self.show_difference = False
        self.diff_pair = [0, 1]
        self.wipe_on = False
        self.wipe = 0.5
        if enabled:
            if len(self.panels) == 1:
                self.same_network_two_resolutions()
            self.set_enabled(True)

    def set_enabled(self, on):
        self.enabled = on and bool(self.panels)
        if self.enabled:
            self.viz.compare.set_panels(self.panels)

    def same_network_two_resolutions(self, pkl=None):
        """One click: the current network at 64 and at 128."""
        pkl = pkl or (self.panels[0].pkl if self.panels else self.viz.pickle_widget.pkl)
        if pkl:
            self.panels = [Panel(pkl, 64), Panel(pkl, 128)]
            self.set_enabled(True)

    def _edit(self, panels):
        self.panels = panels
        self.set_enabled(self.enabled)

    def __call__(self, show=True):
        compare = self.viz.compare
        compare.difference = tuple(self.diff_pair) if self.enabled and self.show_difference and \
            max(self.diff_pair) < len(self.panels) else None
        compare.wipe = self.wipe if self.enabled and self.wipe_on and len(self.panels) >= 2 \
            else None
        if not show:
            return
        viz = self.viz
        label('Compare', viz.label_w)
        changed, on = imgui.checkbox('Side by side', self.enabled)
        if changed:
            if on and not self.panels and viz.pickle_widget.pkl:
                self.panels = [Panel(viz.pickle_widget.pkl)]
            self.set_enabled(on)
        imgui.same_line()
        if button('64 vs 128', enabled=bool(self.panels or viz.pickle_widget.pkl)):
            self.same_network_two_resolutions(viz.pickle_widget.pkl)
        for i, panel in enumerate(list(self.panels)):
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text(f'{i + 1}. {panel.name}')
            imgui.same_line()
            choices = [0] + list(NRR_CHOICES)
            names = ['shared'] + [f'{n}^2' for n in NRR_CHOICES]
            imgui.set_next_item_width(viz.button_w * 1.6)
            current = choices.index(panel.nrr) if panel.nrr in choices else 0
            changed, idx = imgui.combo(f'##pnrr{i}', current, names)
            if changed:
                self._edit(self.panels[:i] + [Panel(panel.pkl, choices[idx] or None)]
                           + self.panels[i + 1:])
            imgui.same_line()
            if imgui.small_button(f'x##rm{i}'):
                self._edit(self.panels[:i] + self.panels[i + 1:])
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.set_next_item_width(viz.field_w)
        entered, self.new_path = imgui.input_text_with_hint(
            '##newpanel', 'add a panel: pickle path', self.new_path,
            imgui.InputTextFlags_.enter_returns_true)
        imgui.same_line()
        can_add = len(self.panels) < MAX_PANELS
        if (button('Add', enabled=can_add, width=viz.button_w) or entered) and can_add:
            from .pickle_widget import resolve_network
            path, _, error = resolve_network(self.new_path or viz.pickle_widget.pkl or '')
            if path:
                self._edit(self.panels + [Panel(path)])
                self.new_path = ''
        imgui.set_cursor_pos_x(viz.label_w)
        _, self.show_difference = imgui.checkbox('Difference of panels', self.show_difference)
        imgui.same_line()
        imgui.set_next_item_width(viz.button_w * 2)
        _, self.diff_pair = imgui.input_int2('##pair', [p + 1 for p in self.diff_pair])
        self.diff_pair = [min(max(p - 1, 0), MAX_PANELS - 1) for p in self.diff_pair]
        imgui.set_cursor_pos_x(viz.label_w)
        _, self.wipe_on = imgui.checkbox('Wipe 2 over 1', self.wipe_on)
        imgui.same_line()
        imgui.set_next_item_width(-1)
        _, self.wipe = imgui.slider_float('##wipe', self.wipe, 0, 1, '%.2f')

    def render_fields(self):
        return {}
