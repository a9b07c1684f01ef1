"""Export mesh: marching-cubes mesh (or density volume) of the latent on screen, in a background
thread with a progress bar and Cancel.

The export takes the ws and the network that the frame on screen carries (RenderResult.ws and
.network.generator) and renders through the network's engine session; it never calls the render
worker's FrameRenderer, which is not thread-safe. It may run beside the worker: the session
serialises its calls with a lock, the worker keeps its own tri-planes, and the decoder and
run_model keep no state."""
from pathlib import Path

from imgui_bundle import imgui

from .background import BackgroundTask
from .capture_widget import next_capture_path
from .gui_helpers import button, label
from .settings import captures_dir

RESOLUTIONS = (64, 128, 256, 384, 512)
FORMATS = ('ply', 'obj', 'glb', 'stl', 'mrc', 'npy')


class MeshExportWidget(BackgroundTask):
    def __init__(self, viz):
        self.viz = viz
        self.resolution = 256
        self.level = 10.0
        self.format = 'glb'
        self.colors = True
        self.coarse_to_fine = True
        self.directory = str(captures_dir())
        # progress: (fraction, stage) while exporting

    def options(self):
        from eg3d_runtime.shapes import ShapeOptions
        mesh = self.format not in ('mrc', 'npy')
        return ShapeOptions(resolution=self.resolution, level=self.level, format=self.format,
                            colors=self.colors and mesh and self.format != 'stl',
                            coarse_to_fine=self.coarse_to_fine and mesh)

    def start(self):
        """Export the latent on screen; returns False when there is nothing to export yet."""
        result = self.viz.frame_on_screen()
        if result is None or result.ws is None or self.running:
            return False
        G, ws = result.network.generator, result.ws
        options = self.options()
        from eg3d_runtime.shapes import ExportCancelled, ShapeExportError, export_shape

        def work():
            directory = Path(self.directory).expanduser()
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ShapeExportError(f'{directory}: cannot create the directory '
                                       f'({e.strerror})') from None
            path = next_capture_path(directory, f'.{options.format}')
            result = export_shape(G.session, ws, path, options, cancel=self._cancel,
                                  progress=lambda f, stage: setattr(self, 'progress', (f, stage)))
            return (f'saved {result.path} ({result.vertices} vertices, '
                    f'{sum(result.seconds.values()):.1f} s)')
        self._start('mesh-export', (0.0, 'starting'), work, ExportCancelled,
                    'export cancelled (no file written)', (ShapeExportError, ValueError),
                    'export failed')
        return True

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('Mesh', viz.label_w)
        imgui.set_next_item_width(viz.button_w * 2)
        changed, idx = imgui.combo('##meshres', RESOLUTIONS.index(self.resolution),
                                   [f'{r}^3' for r in RESOLUTIONS])
        if changed:
            self.resolution = RESOLUTIONS[idx]
        imgui.same_line()
        imgui.set_next_item_width(viz.button_w * 1.5)
        changed, idx = imgui.combo('##meshfmt', FORMATS.index(self.format), list(FORMATS))
        if changed:
            self.format = FORMATS[idx]
        imgui.same_line()
        imgui.set_next_item_width(viz.button_w * 2)
        _, self.level = imgui.drag_float('##level', self.level, 0.1, -20, 50, 'level %.1f')
        imgui.set_cursor_pos_x(viz.label_w)
        _, self.colors = imgui.checkbox('Vertex colours', self.colors)
        imgui.same_line()
        _, self.coarse_to_fine = imgui.checkbox('Coarse-to-fine', self.coarse_to_fine)
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.set_next_item_width(-viz.button_w * 2 - viz.spacing)
        _, self.directory = imgui.input_text('##meshdir', self.directory)
        imgui.same_line()
        if self.progress is None:
            if button('Export mesh', enabled=bool(viz.pickle_widget.pkl), width=-1):
                self.start()
        elif button('Cancel##mesh', width=-1):
            self.cancel()
        if self.progress is not None:
            imgui.set_cursor_pos_x(viz.label_w)
            fraction, stage = self.progress
            imgui.progress_bar(fraction, imgui.ImVec2(-1, 0), f'{stage} {fraction * 100:.0f}%')
        elif self.message:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text_wrapped(self.message)

    def render_fields(self):
        return {}
