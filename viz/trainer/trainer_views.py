"""What the Trainer tab shows of a run: ImPlot curves over kimg and the fakes grids with a kimg
slider. Both draw only from a RunState that the monitor thread has already read."""
import numpy as np
from imgui_bundle import imgui, implot

from gui_utils import imgui_compat
from gui_utils.gl_texture import Texture

# Curve groups: title -> stats.jsonl names (Schedule/* exist only in our runs).
CURVES = {
    'Losses': ['Loss/G/loss', 'Loss/D/loss'],
    'Scores': ['Loss/scores/real', 'Loss/scores/fake'],
    'R1 penalty': ['Loss/r1_penalty', 'Loss/D/reg'],
    'Augment p': ['Progress/augment'],
    'sec/kimg': ['Timing/sec_per_kimg'],
    'Memory GB': ['Resources/cpu_mem_gb', 'Resources/peak_gpu_mem_gb',
                  'Resources/peak_gpu_mem_reserved_gb'],
    'Learning rates': ['Schedule/G_lr', 'Schedule/D_lr'],
    'Neural rendering res.': ['Schedule/neural_rendering_resolution'],
    'Blur & GPC swap': ['Schedule/blur_sigma', 'Schedule/gpc_swap_prob'],
    'Metrics': None,                      # every result of every metric-*.jsonl
}
DEFAULT_CURVES = ('Losses', 'R1 penalty', 'Metrics', 'Neural rendering res.')
GRID_KINDS = ('rgb', 'raw', 'depth')


def plottable(values):
    """NaN and +-Infinity become gaps in the line (ImPlot cannot place them)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(values), values, np.nan)


class CurvesView:
    def __init__(self):
        self.shown = {title: title in DEFAULT_CURVES for title in CURVES}
        self.drawn = {}                   # name -> (kimg, values) plotted in the last frame

    def names(self, state, title):
        wanted = CURVES[title]
        if wanted is None:
            return sorted(state.metrics)
        return [name for name in wanted if name in state.stats]

    def __call__(self, state, width, plot_h):
        self.drawn = {}
        available = [t for t in CURVES if self.names(state, t)]
        if not available:
            imgui.text_disabled('no stats yet')
            return
        for i, title in enumerate(available):
            if i % 4:
                imgui.same_line()
            _, self.shown[title] = imgui.checkbox(title, self.shown[title])
        for title in available:
            if self.shown[title]:
                self._plot(state, title, width, plot_h)

    def _plot(self, state, title, width, plot_h):
        if not implot.begin_plot(title, imgui.ImVec2(width, plot_h)):
            return
        implot.setup_axes('kimg', '', implot.AxisFlags_.auto_fit, implot.AxisFlags_.auto_fit)
        for name in self.names(state, title):
            kimg, values = state.series(name)
            values = plottable(values)
            self.drawn[name] = (kimg, values)
            if len(kimg) == 1:
                implot.plot_scatter(name, np.ascontiguousarray(kimg), values)
            else:
                implot.plot_line(name, np.ascontiguousarray(kimg), values)   # NaN: a gap
        implot.end_plot()


class FakesView:
    """The fakes grid at a chosen kimg; the slider stays on the newest grid until moved."""

    def __init__(self):
        self.kind = 'rgb'
        self.index = None                 # None: follow the newest grid
        self.texture = None
        self.shown_path = None

    def wanted(self, state):
        grids = state.fakes.get(self.kind, [])
        if not grids:
            return None
        index = len(grids) - 1 if self.index is None else min(self.index, len(grids) - 1)
        return grids[index]

    def __call__(self, state, monitor, width):
        grids = state.fakes.get(self.kind, [])
        imgui.set_next_item_width(width * 0.25)
        changed, kind = imgui.combo('##gridkind', GRID_KINDS.index(self.kind), list(GRID_KINDS))
        if changed:
            self.kind = GRID_KINDS[kind]
        if not grids:
            imgui.same_line()
            imgui.text_disabled('no fakes*.png yet')
            return
        kimgs = [k for k, _ in grids]
        imgui.same_line()
        imgui.set_next_item_width(-1)
        current = len(grids) - 1 if self.index is None else min(self.index, len(grids) - 1)
        changed, current = imgui.slider_int('##fakeskimg', current, 0, len(grids) - 1,
                                            f'kimg {kimgs[current]}')
        if changed:
            self.index = None if current == len(grids) - 1 else current
        path = self.wanted(state)[1]
        monitor.request_grid(path)
        if state.fakes_image is not None and state.fakes_image[0] == path and \
                self.shown_path != path:
            if self.texture is None:
                self.texture = Texture()
            self.texture.update(state.fakes_image[1])
            self.shown_path = path
        if self.texture is not None and self.shown_path is not None:
            h = width * self.texture.height / max(self.texture.width, 1)
            imgui.image(imgui_compat.texture(self.texture.id), imgui.ImVec2(width, h))
            imgui.text_disabled(self.shown_path.name)

    def delete(self):
        if self.texture is not None:
            self.texture.delete()
            self.texture = None
