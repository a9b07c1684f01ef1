"""Export mesh: marching-cubes mesh (or density volume) of the latent on screen, in a background
thread with a progress bar and Cancel.

The export takes the ws and the network that the frame on screen carries (RenderResult.ws and
.network.generator) and renders through the network's engine session; it never calls the render
worker's FrameRenderer, which is not thread-safe. It may run beside the worker: the session
serialises its calls with a lock, the worker keeps its own tri-planes, and the decoder and
run_model keep no state."""
from pathlib import Path

from imgui_bundle import imgui

from eg3d_runtime.files import atomic_open, next_capture_path
from eg3d_runtime.remote import values
from eg3d_runtime.remote.client import RemoteError

from .background import BackgroundTask
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
        # With a render server: the export runs there and its file is sent here ('laptop') or
        # saved there ('server', in server_directory: a folder it serves; empty: eg3d-exports
        # in its working folder).
        self.save_on = 'laptop'
        self.server_directory = ''
        self._job = None                 # (connection, id) of the server's export
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
        if self.viz.remote:
            return self._start_remote(result)
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

    def _start_remote(self, result):
        """The export of the view's frame, computed on the render server."""
        if result is None or self.running:
            return False
        viz = self.viz
        options = self.options()

        def work():
            if viz.comparing:
                raise RemoteError('a render server exports the view\'s latent: leave compare '
                                  'mode to export')
            connection, frame = viz.worker.server_frame(result)
            self._job = connection, connection.new_id()
            reply = connection.call(
                'mesh', timeout=None, id_=self._job[1], frame=frame, to=self.save_on,
                directory=self.server_directory, options=values.to_json(options),
                on_progress=lambda m: setattr(self, 'progress', (
                    float(m.fields.get('fraction', 0.0)), str(m.fields.get('stage', '')))))
            f = reply.fields
            if f.get('cancelled'):
                return 'export cancelled (no file written)'
            if f.get('error') or reply.type != 'mesh_done':
                raise RemoteError(str(f.get('error') or f.get('message')))
            summary = f'{f.get("vertices")} vertices, {f.get("seconds", 0):.1f} s on the server'
            if self.save_on == 'server':
                return f'saved {f.get("path")} on the server ({summary})'
            directory = Path(self.directory).expanduser()
            directory.mkdir(parents=True, exist_ok=True)
            path = next_capture_path(directory, f'.{options.format}')
            with atomic_open(path) as out:
                out.write(reply.blob)
            return f'saved {path} ({summary})'
        self._start('mesh-export', (0.0, 'starting on the server'), work, (), '',
                    (RemoteError, OSError), 'export failed')
        return True

    def cancel(self):
        super().cancel()
        if self._job is not None and self.running:
            connection, job = self._job
            connection.send('cancel', job=job)

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
        if viz.remote:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text('Save on')
            for place in ('laptop', 'server'):
                imgui.same_line()
                if imgui.radio_button(f'{"this machine" if place == "laptop" else "the server"}'
                                      f'##meshto', self.save_on == place):
                    self.save_on = place
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.set_next_item_width(-viz.button_w * 2 - viz.spacing)
        if viz.remote and self.save_on == 'server':
            _, self.server_directory = imgui.input_text_with_hint(
                '##meshsrvdir', 'folder on the server (default: eg3d-exports)',
                self.server_directory)
        else:
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
