"""Performance: GUI and render times with plots, FPS limit, vsync, fp32, the precision that ran,
device, display path."""
from collections import deque

import numpy as np
from imgui_bundle import imgui, implot

from eg3d_runtime.devices import cuda_available

from .gui_helpers import label


class PerfWidget:
    def __init__(self, viz):
        self.viz = viz
        self.gui_times = deque(maxlen=120)
        self.render_times = deque(maxlen=60)
        self.fps_limit = 60
        self.vsync = False
        self.force_fp32 = False
        self.devices = ['cpu'] + (['cuda'] if cuda_available() else [])

    def record_render(self, ms):
        self.render_times.append(ms)

    def __call__(self, show=True):
        viz = self.viz
        if viz.window.frame_delta > 0:
            self.gui_times.append(viz.window.frame_delta * 1e3)
        viz.window.fps_limit = self.fps_limit
        viz.window.set_vsync(self.vsync)
        if not show:
            return
        for name, times in (('GUI', self.gui_times), ('Render', self.render_times)):
            label(name, viz.label_w)
            mean = float(np.mean(times)) if times else 0.0
            imgui.text(f'{mean:7.1f} ms  {1e3 / mean if mean else 0:6.1f} FPS')
            imgui.same_line()
            plot_h = viz.font_size * 2.5
            if implot.begin_plot(f'##{name}', imgui.ImVec2(-1, plot_h),
                                 implot.Flags_.canvas_only):
                implot.setup_axes('', '', implot.AxisFlags_.no_decorations,
                                  implot.AxisFlags_.no_decorations | implot.AxisFlags_.auto_fit)
                implot.setup_axis_limits(implot.ImAxis_.x1, 0, times.maxlen, implot.Cond_.always)
                if times:
                    implot.plot_line(name, np.asarray(times, dtype=np.float32))
                implot.end_plot()
        label('FPS limit', viz.label_w)
        imgui.set_next_item_width(viz.field_w / 2)
        _, self.fps_limit = imgui.slider_int('##fps', self.fps_limit, 5, 240)
        imgui.same_line()
        _, self.vsync = imgui.checkbox('Vsync', self.vsync)
        imgui.same_line()
        _, self.force_fp32 = imgui.checkbox('Force FP32', self.force_fp32)
        label('Precision', viz.label_w)
        result = viz.viewport.result
        imgui.text_wrapped(result.precision if result and result.precision else '-')
        label('Device', viz.label_w)
        if viz.remote:
            imgui.text_wrapped(viz.link.describe())
        else:
            self._device_combo()
        label('Display', viz.label_w)
        texture = viz.viewport.texture
        imgui.text_wrapped(f'{texture.path}: {texture.path_reason}' if texture else 'no frame yet')

    def _device_combo(self):
        viz = self.viz
        imgui.set_next_item_width(viz.button_w * 2)
        current = self.devices.index(viz.device) if viz.device in self.devices else 0
        changed, idx = imgui.combo('##device', current, self.devices)
        if changed:
            viz.set_device(self.devices[idx])
        if len(self.devices) == 1:
            imgui.same_line()
            imgui.text_disabled('(no CUDA device found)')

    def render_fields(self):
        return {'force_fp32': self.force_fp32}
