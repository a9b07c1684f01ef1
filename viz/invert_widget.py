"""Invert image: put a picture (chosen, typed or dropped on the window) into the current
network on a background thread, with progress, the loss, a live preview and Cancel; the tuned
network and its pivot latent then become what the viewer shows, ready to orbit, compare with
the original network and export as a mesh.

The camera is the picture's label in a dataset.json beside it, else it is estimated. The work
runs like the mesh export, beside the render worker: it uses the process's one copy of the
network (pickles.open_generator), which it only reads (the tuning changes a copy), never the
worker's FrameRenderer, so frames keep coming while it runs."""
import time
from pathlib import Path, PurePosixPath

from imgui_bundle import imgui

from eg3d_runtime import views
from eg3d_runtime.files import next_capture_path
from eg3d_runtime.inversion.invert import Settings, invert, load_inputs
from eg3d_runtime.inversion.outputs import make_outdir, write_outputs
from eg3d_runtime.inversion.targets import InversionError, dataset_camera
from eg3d_runtime.remote import codec
from eg3d_runtime.remote.client import RemoteError
from gui_utils import imgui_compat
from gui_utils.gl_texture import Texture

from .background import BackgroundTask
from .compare import Panel
from .gui_helpers import button, label
from .pickle_widget import FolderLister, browse_popup
from .settings import captures_dir

PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')
PREVIEW_SECONDS = 0.5        # how often the live preview is refreshed


class Cancelled(Exception):
    pass


def is_picture(path):
    return Path(path).suffix.lower() in PICTURE_SUFFIXES


class InvertWidget(BackgroundTask):
    def __init__(self, viz):
        self.viz = viz
        self.path = ''
        self.num_steps = Settings.num_steps
        self.pti_steps = Settings.pti_steps
        self.directory = str(captures_dir() / 'inversions')
        self.server_directory = ''    # with a render server: where it writes (a folder it serves)
        self._job = None              # (connection, id) of the server's inversion
        # progress: (stage, step, total, loss) while inverting
        self.original_pkl = None      # the network the last result was inverted in
        self._preview = None          # newest preview picture, uint8 numpy, for the GUI thread
        self._preview_time = 0.0
        self._texture = None
        self._finished = None         # output directory, handed from the worker to the GUI
        self._camera_source = (None, '')
        self.browse_dir = Path.cwd()
        self._lister = FolderLister(PICTURE_SUFFIXES)

    def choose(self, path):
        self.path = str(path)

    def camera_source(self):
        """What the inversion will use as the picture's camera, for the panel (looked up once
        per path: a dataset.json may hold 70k labels)."""
        if self._camera_source[0] != self.path:
            try:
                found = dataset_camera(self.path) is not None
                answer = 'dataset.json label' if found else 'estimated'
            except InversionError as e:
                answer = str(e)
            self._camera_source = (self.path, answer)
        return self._camera_source[1]

    def start(self):
        """Invert the chosen picture in the current network; False when that is not possible."""
        pkl = self.viz.pickle_widget.pkl
        if not pkl or not self.path or self.running:
            return False
        self._preview = None
        if self.viz.remote:
            return self._start_remote(pkl)
        picture, device = self.path, self.viz.device
        settings = Settings(num_steps=max(self.num_steps, 0), pti_steps=max(self.pti_steps, 0))
        parent = Path(self.directory).expanduser()

        def work():
            networks, target = load_inputs(pkl, picture, device)
            result = invert(networks['G_ema'], target, dataset_camera(picture), settings,
                            on_step=self._step)
            make_outdir(parent)
            outdir = next_capture_path(parent, '')
            make_outdir(outdir)
            write_outputs(outdir, networks, result)
            self._finished = (pkl, outdir)
            return f'saved {outdir}'
        self._start('invert', ('loading', 0, 1, float('nan')), work, Cancelled,
                    'inversion cancelled (no files written)', InversionError,
                    'inversion failed')
        return True

    def _start_remote(self, pkl):
        """Upload the picture; the server inverts it in its network and writes the outputs
        there; the tuned network and latent then open from the server's folder."""
        link, picture = self.viz.link, Path(self.path).expanduser()
        settings = {'num_steps': max(self.num_steps, 0), 'pti_steps': max(self.pti_steps, 0)}

        def work():
            if link.disconnected:
                raise RemoteError(f'disconnected: {link.disconnected}')
            camera = dataset_camera(picture)          # a label beside the picture, here
            try:
                data = picture.read_bytes()
            except OSError as e:
                raise InversionError(f'{picture}: cannot read ({e.strerror})') from None
            connection = link.connection
            self._job = connection, connection.new_id()
            reply = connection.call(
                'invert', timeout=None, id_=self._job[1], blob=data, pkl=pkl, name=picture.name,
                camera=None if camera is None else camera.reshape(-1).tolist(),
                directory=self.server_directory, on_progress=self._remote_step, **settings)
            f = reply.fields
            if f.get('cancelled'):
                raise Cancelled()
            if f.get('error') or reply.type != 'invert_done':
                raise InversionError(str(f.get('error') or f.get('message')))
            outdir = PurePosixPath(f['outdir'])
            self._finished = (pkl, outdir)
            return f'saved {outdir} on the server'
        self._start('invert', ('uploading', 0, 1, float('nan')), work, Cancelled,
                    'inversion cancelled (no files written)', (InversionError, RemoteError),
                    'inversion failed')
        return True

    def _remote_step(self, message):
        f = message.fields
        self.progress = (str(f.get('stage', '')), int(f.get('step', 0)), int(f.get('total', 1)),
                         float(f.get('loss', float('nan'))))
        if message.blob:
            self._preview = codec.decode_image(message.blob)

    def cancel(self):
        super().cancel()
        if self._job is not None and self.running:
            connection, job = self._job
            connection.send('cancel', job=job)

    def _step(self, step):
        """Worker thread: record progress and, now and then, the preview; honour Cancel."""
        if self._cancel.is_set():
            raise Cancelled()
        self.progress = (step.stage, step.step, step.total, step.loss)
        now = time.monotonic()
        if now - self._preview_time > PREVIEW_SECONDS:
            self._preview = views.image_to_uint8(step.image).cpu().numpy()
            self._preview_time = now

    def close(self):
        self.cancel()
        self.join(timeout=30)
        self._lister.close()
        if self._texture is not None:
            self._texture.delete()
            self._texture = None

    def _take_result(self):
        """GUI thread: the finished inversion becomes the current network and latent."""
        if self._finished is None:
            return
        (self.original_pkl, outdir), self._finished = self._finished, None
        self.viz.pickle_widget.load(str(outdir / 'inverted.pkl'))
        self.viz.latent_widget.use_ws_file(str(outdir / 'w.npy'))

    def compare_with_original(self):
        """Side by side: the original network and the tuned one, both at the pivot."""
        widget = self.viz.compare_widget
        widget.panels = [Panel(self.original_pkl), Panel(self.viz.pickle_widget.pkl)]
        widget.set_enabled(True)

    def __call__(self, show=True):
        self._take_result()
        if not show:
            return
        viz = self.viz
        label('Invert', viz.label_w)
        imgui.set_next_item_width(-viz.button_w * 3 - viz.spacing * 2)
        _, self.path = imgui.input_text_with_hint('##invertpath', 'picture to invert (or drop '
                                                  'one on the window)', self.path)
        imgui.same_line()
        if button('Browse...##invert', width=viz.button_w):
            imgui.open_popup('invert_browse')
        self.browse_dir, picked = browse_popup('invert_browse', self._lister, self.browse_dir)
        if picked:
            self.choose(picked)
        imgui.same_line()
        if self.progress is None:
            if button('Invert image...', enabled=bool(self.path and viz.pickle_widget.pkl),
                      width=-1):
                self.start()
        elif button('Cancel##invert', width=-1):
            self.cancel()
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.set_next_item_width(viz.button_w * 2)
        _, self.num_steps = imgui.input_int('w steps', self.num_steps, 50, 100)
        imgui.same_line()
        imgui.set_next_item_width(viz.button_w * 2)
        _, self.pti_steps = imgui.input_int('tuning steps', self.pti_steps, 50, 100)
        if self.path:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text_disabled(f'camera: {self.camera_source()}')
        if self.progress is not None:
            self._draw_progress()
        elif self.message:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text_wrapped(self.message)
        if self.original_pkl and viz.latent_widget.ws_file:
            imgui.set_cursor_pos_x(viz.label_w)
            if button('Compare with the original network'):
                self.compare_with_original()

    def _draw_progress(self):
        viz = self.viz
        stage, step, total, loss = self.progress
        imgui.set_cursor_pos_x(viz.label_w)
        imgui.progress_bar(step / max(total, 1), imgui.ImVec2(-1, 0),
                           f'{stage} {step}/{total}  loss {loss:.4f}')
        if self._preview is not None:
            if self._texture is None:
                self._texture = Texture()
            self._texture.update(self._preview)
            imgui.set_cursor_pos_x(viz.label_w)
            side = viz.button_w * 2
            imgui.image(imgui_compat.texture(self._texture.id), imgui.ImVec2(side, side))

    def render_fields(self):
        return {}
