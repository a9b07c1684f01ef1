"""Capture: save the rendered image, the whole window, or an orbit video (animated WebP)."""
import math
import re
from pathlib import Path

from imgui_bundle import imgui
from PIL import Image

from .gui_helpers import button, label
from .settings import captures_dir

ORBIT_FRAMES = 48
ORBIT_YAW = 0.35


def next_capture_path(directory: Path, suffix: str) -> Path:
    """NNNNN<suffix> with NNNNN one more than the largest numbered file present."""
    numbers = [int(m.group(1)) for p in directory.glob('*') if (m := re.match(r'(\d+)', p.name))]
    return directory / f'{max(numbers, default=0) + 1:05d}{suffix}'


def orbit_pose(k, n, yaw0, pitch0):
    """Frame k of n of the official video orbit (gen_videos.py), around the current pose."""
    t = 2 * math.pi * k / n
    return yaw0 + ORBIT_YAW * math.sin(t), pitch0 - 0.05 + 0.25 * math.cos(t)


class CaptureWidget:
    def __init__(self, viz, directory=None):
        self.viz = viz
        self.directory = str(directory or captures_dir())
        self.message = ''
        self.want_gui_grab = False
        self.orbit = None            # list of frames while recording

    def _dir(self):
        path = Path(self.directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_image(self, image):
        try:
            path = next_capture_path(self._dir(), '.png')
            Image.fromarray(image).save(path)
            self.message = f'saved {path}'
        except OSError as e:
            self.message = f'{self.directory}: cannot save ({e.strerror or e})'

    def gui_grabbed(self, pixels):
        self.want_gui_grab = False
        self.save_image(pixels)

    # Orbit recording: the visualizer asks `orbit_pose` for the pose of the next frame and
    # hands every finished full-quality frame to `orbit_frame`.
    def orbit_pose(self):
        if self.orbit is None:
            return None
        return orbit_pose(len(self.orbit), ORBIT_FRAMES, *self._orbit_base)

    def start_orbit(self):
        """Record ORBIT_FRAMES full-quality frames around the current pose."""
        self.orbit = []
        self._orbit_base = (self.viz.pose_widget.yaw, self.viz.pose_widget.pitch)

    def orbit_frame(self, image):
        self.orbit.append(image)
        if len(self.orbit) < ORBIT_FRAMES:
            return
        frames, self.orbit = self.orbit, None
        try:
            path = next_capture_path(self._dir(), '.webp')
            Image.fromarray(frames[0]).save(path, save_all=True, lossless=False, quality=90,
                                            append_images=[Image.fromarray(f) for f in frames[1:]],
                                            duration=round(1000 / 24), loop=0)
            self.message = f'saved {path} ({ORBIT_FRAMES} frames)'
        except OSError as e:
            self.message = f'{self.directory}: cannot save ({e.strerror or e})'

    def render_fields(self):
        return {}

    def __call__(self, show=True):
        if not show:
            return
        viz = self.viz
        label('Capture', viz.label_w)
        imgui.set_next_item_width(-1)
        _, self.directory = imgui.input_text('##capdir', self.directory)
        imgui.set_cursor_pos_x(viz.label_w)
        image = viz.current_image()
        if button('Save image', enabled=image is not None, width=viz.button_w * 2):
            self.save_image(image)
        imgui.same_line()
        if button('Save GUI', width=viz.button_w * 2):
            self.want_gui_grab = True
        imgui.same_line()
        if self.orbit is None:
            if button('Record orbit', enabled=bool(viz.pickle_widget.pkl),
                      width=viz.button_w * 2):
                self.start_orbit()
        else:
            imgui.progress_bar(len(self.orbit) / ORBIT_FRAMES, imgui.ImVec2(-viz.button_w - 8, 0),
                               f'orbit {len(self.orbit)}/{ORBIT_FRAMES}')
            imgui.same_line()
            if button('Cancel##orbit', width=viz.button_w):
                self.orbit = None
        if self.message:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text_disabled(self.message)
