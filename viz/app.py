"""The viewer: one loop that draws the control pane and the viewport, sends RenderArgs to the
render worker and shows whatever frame is newest. The loop never waits for the model."""
import logging
import time

from imgui_bundle import imgui
from PIL import Image

from eg3d_runtime.devices import default_device
from eg3d_runtime.files import atomic_open
from eg3d_runtime.frames.frame_renderer import NO_NETWORK, FrameRenderer, RenderResult
from eg3d_runtime.frames.render_args import RenderArgs
from gui_utils.imgui_window import ImguiWindow

from .capture_widget import CaptureWidget
from .compare import CompareView
from .compare_widget import CompareWidget
from .cond_pose_widget import CondPoseWidget
from .fov_widget import FovWidget
from .invert_widget import InvertWidget, is_picture
from .latent_widget import LatentWidget
from .layer_widget import LayerWidget
from .mesh_export_widget import MeshExportWidget
from .perf_widget import PerfWidget
from .pickle_widget import PickleWidget
from .pose_widget import PoseWidget
from .remote_widget import RemoteWidget
from .remote_worker import RemoteLink, RemoteWorker, connector
from .render_widget import RenderWidget
from .render_worker import RenderWorker
from .stylemix_widget import StylemixWidget
from .trainer.trainer_widget import TrainerWidget
from .trunc_widget import TruncWidget
from .viewport import Viewport

log = logging.getLogger('eg3d.viewer')
STILL_SECONDS = 0.3      # refine to full quality once the inputs are this long unchanged
PANE_FLAGS = (imgui.WindowFlags_.no_title_bar | imgui.WindowFlags_.no_move
              | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
              | imgui.WindowFlags_.no_saved_settings)


class Visualizer:
    def __init__(self, options, worker=None):
        """`worker`: a RenderWorker already started for `options.device`, or with --remote /
        --connect a RemoteWorker already connected (visualizer.py starts it before importing
        the GUI, so that it opens the first network or the connection meanwhile)."""
        self.options = options
        self.remote = bool(getattr(options, 'remote', None) or getattr(options, 'connect', None))
        if self.remote:         # a render server renders; its device is its own choice
            self.worker = worker or RemoteWorker(RemoteLink(connector(options)), 'view',
                                                 options.jpeg_quality)
            self.link = self.worker.link
            self.device = 'remote'
        else:
            self.link = None
            self.device = options.device or default_device()
            self.worker: RenderWorker[RenderArgs, RenderResult] = worker or RenderWorker(
                FrameRenderer(self.device))
        self.window = ImguiWindow('EG3D Visualizer', options.width, options.height,
                                  headless=options.headless)
        self.network = NO_NETWORK        # of the newest frame
        self.layers = ()                 # the newest frame's layers (layer viewer)
        self.font_size = 16
        self._layout(*self.window.content_size)
        self.viewport = Viewport(self)
        self.pose_widget = PoseWidget(self, options.yaw, options.pitch)
        self.fov_widget = FovWidget(self)
        if options.fov is not None:
            self.fov_widget.set_default(options.fov)
        self.cond_pose_widget = CondPoseWidget(self, options.pose_cond)
        self.latent_widget = LatentWidget(self, options.seed)
        self.stylemix_widget = StylemixWidget(self)
        self.trunc_widget = TruncWidget(self, options.psi)
        self.render_widget = RenderWidget(self, options.render_type, options.nrr)
        self.render_widget.background = not options.no_background
        self.perf_widget = PerfWidget(self)
        self.capture_widget = CaptureWidget(self, options.capture_dir)
        self.layer_widget = LayerWidget(self)
        self.mesh_widget = MeshExportWidget(self)
        self.compare = CompareView(self)
        self.pickle_widget = PickleWidget(self, options.pkls, remote=self.link)
        self.invert_widget = InvertWidget(self)
        self.compare_widget = CompareWidget(
            self, options.pkls if self.remote else self.pickle_widget.resolved_paths(options.pkls),
            enabled=options.compare)
        self.remote_widget = RemoteWidget(self)
        self.sections = [
            ('Network & latent', [self.pickle_widget, self.latent_widget, self.stylemix_widget,
                                  self.trunc_widget, self.invert_widget]),
            ('Camera', [self.pose_widget, self.fov_widget, self.cond_pose_widget]),
            ('Rendering', [self.render_widget]),
            ('Compare', [self.compare_widget]),
            ('Performance & capture', [self.perf_widget, self.capture_widget]),
            ('Export mesh', [self.mesh_widget]),
            ('Layers & channels', [self.layer_widget]),
        ]
        # --run alone shows the run's networks too: its latest snapshot, then each newer one.
        self.trainer_widget = TrainerWidget(self, options.run,
                                            follow_latest=bool(options.run and not options.pkls))
        self.tab = None                      # 'Viewer' or 'Trainer', the tab on screen
        self._select_tab = 'Trainer' if options.run else None
        self._core_args = None
        self._last_change = 0.0

    # ---- called by widgets -------------------------------------------------------------------
    def on_network_selected(self, path, checkpoint=None):
        if checkpoint is not None:
            self.fov_widget.set_default(checkpoint.fov_degrees)

    def set_device(self, device):
        if device == self.device or self.remote:
            return
        self.worker.close()
        self.compare.close()
        self.device = device
        self.worker = RenderWorker(FrameRenderer(device))
        self.compare_widget.set_enabled(self.compare_widget.enabled)

    @property
    def comparing(self):
        return self.compare_widget.enabled

    def current_image(self):
        """What 'Save image' and the orbit video capture: the frame, or all panels."""
        return self.compare.composite() if self.comparing else self.viewport.last_image

    def frame_on_screen(self):
        """The RenderResult whose latent exports use: the view's, or panel 1's when comparing."""
        return self.compare.results.get(0) if self.comparing else self.viewport.result

    def frame_complete(self, args):
        """The full-quality frame(s) of `args` are on screen."""
        if self.comparing:
            return self.compare.complete(args)
        result = self.viewport.result
        return not self.worker.busy and result is not None and result.quality == 'full' \
            and result.args == args

    # ---- frame -----------------------------------------------------------------------------
    def _layout(self, width, height):
        self.font_size = min(max(min(width / 90, height / 50), 13), 28)
        self.spacing = round(self.font_size * 0.4)
        self.pane_w = round(self.font_size * 37)
        self.label_w = round(self.font_size * 6.5)
        self.button_w = round(self.font_size * 4.5)
        self.field_w = self.pane_w - self.label_w - 2 * self.button_w - 4 * self.spacing

    def render_args(self):
        fields = {}
        for _, widgets in self.sections:
            for widget in widgets:
                fields.update(widget.render_fields())
        orbit = self.capture_widget.orbit_pose()
        if orbit is not None:
            fields['yaw'], fields['pitch'] = orbit
        return RenderArgs(**fields)

    def draw_frame(self, screenshot=None):
        """One GUI frame; with `screenshot` the whole window is also saved to that file."""
        self.window.begin_frame()
        self._take_drops()
        width, height = self.window.content_size
        self._layout(width, height)
        self.window.set_font_size(self.font_size)
        imgui.set_next_window_pos(imgui.ImVec2(0, 0))
        imgui.set_next_window_size(imgui.ImVec2(self.pane_w, height))
        imgui.begin('##pane', None, PANE_FLAGS)
        self.remote_widget()
        self._draw_tabs()
        imgui.end()
        if self.comparing:
            self.compare.draw(self.pane_w, 0, width - self.pane_w, height)
        else:
            self.viewport(self.pane_w, 0, width - self.pane_w, height)
        self._submit()
        self._show_results()
        self.window.render_gui()
        if screenshot is not None:
            with atomic_open(screenshot) as f:
                Image.fromarray(self.window.grab_framebuffer()).save(f, 'PNG')
        elif self.capture_widget.want_gui_grab:
            self.capture_widget.gui_grabbed(self.window.grab_framebuffer())
        self.window.end_frame()

    def _take_drops(self):
        """Files dropped on the window: pictures are for inverting, the rest are networks."""
        for path in self.window.pop_drop_paths():
            if is_picture(path):
                self.invert_widget.choose(path)       # uploaded to a render server to invert
            elif self.remote:
                self.pickle_widget.error = (f'{path} is on this machine: the render server '
                                            f'opens its own files (Browse... lists them)')
            else:
                self.pickle_widget.load(path)

    def select_tab(self, name):
        self._select_tab = name

    def _draw_tabs(self):
        """Viewer and Trainer tabs; the hidden tab's widgets still run (show=False)."""
        self.tab = None
        if imgui.begin_tab_bar('##tabs'):
            for name in ('Viewer', 'Trainer'):
                flags = imgui.TabItemFlags_.set_selected if self._select_tab == name else 0
                if imgui.begin_tab_item(name, None, flags)[0]:
                    self.tab = name
                    if name == 'Viewer':
                        self._draw_sections(True)
                    else:
                        self.trainer_widget(show=True)
                    imgui.end_tab_item()
            imgui.end_tab_bar()
        self._select_tab = None
        if self.tab != 'Viewer':
            self._draw_sections(False)
        if self.tab != 'Trainer':
            self.trainer_widget(show=False)

    def _draw_sections(self, show):
        for title, widgets in self.sections:
            flags = imgui.TreeNodeFlags_.default_open if widgets[0] is not self.layer_widget else 0
            expanded = show and imgui.collapsing_header(title, flags)
            for widget in widgets:
                widget(show=expanded)

    def _submit(self):
        """Preview while the inputs change, the full frame once they are still."""
        args = self.render_args()
        now = time.monotonic()
        if args != self._core_args:
            self._core_args = args
            self._last_change = now
        recording = self.capture_widget.orbit is not None
        interacting = self.compare.interacting if self.comparing else self.viewport.interacting
        moving = interacting or now - self._last_change < STILL_SECONDS
        args = args.with_(preview=moving and not recording)
        if self.remote:          # recordings are made of exact (PNG) frames
            self.worker.lossless = recording
        if self.comparing:
            self.compare.submit(args)
        else:
            self.worker.submit(args)

    def _show_results(self):
        if self.comparing:
            for result in self.compare.poll():
                self._take_network(result)
                if result.timings:
                    self.perf_widget.record_render(result.timings['synthesis'])
            self._record_orbit()
            return
        result = self.worker.poll()
        if result is None:
            return
        if result.error and result.error != getattr(self.viewport.result, 'error', None):
            log.error(result.error)
        if result.load_failed:
            self.pickle_widget.load_failed(result.args.pkl, result.error)
        elif result.network is not None:
            self._take_network(result)
            self.pickle_widget.loaded(result.args.pkl)
        if result.timings:
            self.perf_widget.record_render(result.timings['synthesis'])
        self.viewport.show_result(result)
        self._record_orbit()

    def _take_network(self, result):
        if result.network is not None:
            self.network, self.layers = result.network, result.layers

    def _record_orbit(self):
        if self.capture_widget.orbit is not None and self.frame_complete(self.render_args()):
            image = self.current_image()
            if image is not None:
                self.capture_widget.orbit_frame(image)

    def failure(self):
        """Why the view does not show what was asked, in one line, or None: a network that
        failed to load or download, or a frame (of any compare panel) that failed."""
        if self.pickle_widget.error:
            return self.pickle_widget.error
        results = self.compare.results.values() if self.comparing else [self.viewport.result]
        return next((r.error for r in results if r is not None and r.error), None)

    def _waiting(self):
        """Work that may still change what is on screen: a download, a render."""
        busy = self.compare.busy if self.comparing else self.worker.busy
        return self.pickle_widget.download is not None or busy

    def _hopeless(self):
        """Nothing more will reach the screen: no network to show (one that failed to load
        with none before it), or the frame failed. (A failed load that keeps the previous
        network still shows a frame.)"""
        if self.pickle_widget.error and not self.pickle_widget.pkl:
            return True
        results = self.compare.results.values() if self.comparing else [self.viewport.result]
        return any(r is not None and r.error for r in results)

    def settle(self, timeout=600):
        """Headless: wait until the newest full-quality frame is on screen, or until it is
        clear that it will not be (a failure, with nothing left running)."""
        deadline = time.monotonic() + timeout
        self._last_change = 0.0
        while time.monotonic() < deadline:
            self.draw_frame()
            downloading = self.pickle_widget.download is not None
            if not downloading and self.frame_complete(self.render_args()):
                return True
            if self._hopeless() and not self._waiting():
                # A frame that finished after this frame's poll is not yet on screen (and no
                # longer busy): one more frame shows it, whatever it changes.
                self.draw_frame()
                if self._hopeless() and not self._waiting():
                    return False
            time.sleep(0.01)
        return False

    def run(self, frames=None, screenshot=None):
        """Draw until the window closes, or `frames` frames; with `screenshot`, wait for the
        full frame and save the window, unless the view failed. Returns failure()."""
        count = 0
        try:
            while not self.window.should_close:
                self.draw_frame()
                count += 1
                if frames is not None and count >= frames:
                    break
            if screenshot:
                self.settle()
                if not self.failure():
                    self.draw_frame(screenshot=screenshot)
            return self.failure()
        finally:
            self.close()

    def close(self):
        self.mesh_widget.cancel()
        self.mesh_widget.join(timeout=10)
        self.invert_widget.close()
        self.trainer_widget.close()
        self.pickle_widget.close()
        self.worker.close()
        self.compare.close()
        if self.link is not None:
            self.link.close()
        self.window.destroy()
