"""Capture: save the rendered image, the whole window, or a video (animated WebP or H.264 MP4,
written by the video command's own writer) of an orbit or of a camera path through keyframes."""
import math
from pathlib import Path

import numpy as np
from imgui_bundle import imgui
from PIL import Image

from eg3d_runtime.cameras import wrap_yaw
from eg3d_runtime.files import next_capture_path
from eg3d_runtime.remote.client import RemoteError
from eg3d_runtime.video import orbit as video_orbit
from eg3d_runtime.video.files import video_file
from eg3d_runtime.video.keyframes import interpolator

from .background import BackgroundTask
from .gui_helpers import button, label
from .settings import captures_dir

ORBIT_FRAMES = 48
ORBIT_FPS = 24
PATH_FRAMES = 24             # frames from one keyframe to the next
VIDEO_FORMATS = {'webp': 'WebP', 'mp4': 'MP4 (H.264)'}


def even_size(frame):
    """H.264 (yuv420p) needs an even width and height: drop an odd last row or column."""
    h, w = frame.shape[:2]
    return frame[:h - h % 2, :w - w % 2].copy() if h % 2 or w % 2 else frame


def orbit_pose(k, n, yaw0, pitch0, full_turn=False):
    """Frame k of n of the official video orbit (video.orbit), around the current pose, as a
    loop that closes; `full_turn`: PanoHead's --cfg Head orbit, once all the way round."""
    yaw, pitch = video_orbit.orbit_pose(k, n, yaw0, pitch0, full_turn, pi=math.pi)
    return (wrap_yaw(yaw) if full_turn else yaw), pitch


def path_poses(keyframes, frames_per_key):
    """The poses of a looping camera path through the (yaw, pitch) keyframes, joined by the
    video command's cubic spline: frames_per_key frames from each keyframe to the next."""
    pose_at = interpolator(np.array(keyframes, np.float64))
    return [tuple(map(float, pose_at(k / frames_per_key)))
            for k in range(len(keyframes) * frames_per_key)]


class CaptureWidget(BackgroundTask):
    def __init__(self, viz, directory=None):
        self.viz = viz
        self.directory = str(directory or captures_dir())
        self.message = ''
        self.want_gui_grab = False
        self.orbit = None            # list of frames while recording
        self.poses = []              # the pose of every frame of the recording
        self.keyframes = []          # (yaw, pitch) of the camera path
        self.video_format = 'webp'

    def _dir(self):
        path = Path(self.directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_image(self, image, prefix=''):
        self.message = self._saved_png(image, prefix)

    def _saved_png(self, image, prefix=''):
        """Saves a frame as the next capture PNG; the message that says where or why not."""
        try:
            path = next_capture_path(self._dir(), '.png')
            Image.fromarray(image).save(path)
            return f'{prefix}saved {path}'
        except OSError as e:
            return f'{self.directory}: cannot save ({e.strerror or e})'

    def save_frame(self, image):
        """'Save image': the frame on screen. From a render server the view's frames are JPEG,
        so the exact pixels of a full-quality frame are fetched again as PNG, off the GUI
        thread."""
        viz = self.viz
        result = viz.viewport.shown
        if not viz.remote or viz.comparing or result is None or result.quality != 'full':
            if viz.remote:
                self.message = 'saving the frame as it was sent (JPEG quality ' \
                               f'{viz.worker.quality}): '
            self.save_image(image, prefix=self.message if viz.remote else '')
            return
        self._start('capture-fetch', None,
                    lambda: self._saved_png(viz.worker.lossless_image(result)), (), '',
                    RemoteError, 'cannot fetch the frame from the server',
                    message='fetching the exact frame from the server...')

    def gui_grabbed(self, pixels):
        self.want_gui_grab = False
        self.save_image(pixels)

    # Video recording: the visualizer asks `orbit_pose` for the pose of the next frame and
    # hands every finished full-quality frame to `orbit_frame`.
    def orbit_pose(self):
        if self.orbit is None:
            return None
        return self.poses[len(self.orbit)]

    def start_orbit(self):
        """Record ORBIT_FRAMES full-quality frames around the current pose (all the way round
        a PanoHead head)."""
        yaw, pitch = self.viz.pose_widget.yaw, self.viz.pose_widget.pitch
        full_turn = self.viz.network.panohead
        self.poses = [orbit_pose(k, ORBIT_FRAMES, yaw, pitch, full_turn)
                      for k in range(ORBIT_FRAMES)]
        self.orbit = []

    def add_keyframe(self):
        self.keyframes.append((self.viz.pose_widget.yaw, self.viz.pose_widget.pitch))
        self.message = f'{len(self.keyframes)} views on the camera path'

    def start_path(self):
        """Record the looping camera path through the keyframes, PATH_FRAMES per keyframe."""
        self.poses = path_poses(self.keyframes, PATH_FRAMES)
        self.orbit = []

    def orbit_frame(self, image):
        self.orbit.append(image)
        if len(self.orbit) < len(self.poses):
            return
        frames, self.orbit = self.orbit, None
        fmt = self.video_format
        try:
            path = next_capture_path(self._dir(), f'.{fmt}')
            with video_file(path, fmt, ORBIT_FPS) as write:
                for frame in frames:
                    write(even_size(frame) if fmt == 'mp4' else frame)
            self.message = f'saved {path} ({len(frames)} frames)'
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
            self.save_frame(image)
        imgui.same_line()
        if button('Save GUI', width=viz.button_w * 2):
            self.want_gui_grab = True
        label('Video', viz.label_w)
        if self.orbit is None:
            imgui.set_next_item_width(viz.button_w * 2.5)
            formats = list(VIDEO_FORMATS)
            changed, idx = imgui.combo('##orbitfmt', formats.index(self.video_format),
                                       list(VIDEO_FORMATS.values()))
            if changed:
                self.video_format = formats[idx]
            imgui.same_line()
            if button('Record orbit', enabled=bool(viz.pickle_widget.pkl),
                      width=viz.button_w * 2):
                self.start_orbit()
            label('Path', viz.label_w)
            if button('Add view', width=viz.button_w * 2):
                self.add_keyframe()
            imgui.same_line()
            if button('Clear##path', enabled=bool(self.keyframes), width=viz.button_w):
                self.keyframes = []
                self.message = 'camera path cleared'
            imgui.same_line()
            if button('Record path', enabled=len(self.keyframes) > 1 and bool(viz.pickle_widget.pkl),
                      width=viz.button_w * 2):
                self.start_path()
        else:
            done, total = len(self.orbit), len(self.poses)
            imgui.progress_bar(done / total, imgui.ImVec2(-viz.button_w - 8, 0),
                               f'frame {done}/{total}')
            imgui.same_line()
            if button('Cancel##orbit', width=viz.button_w):
                self.orbit = None
        if self.message:
            imgui.set_cursor_pos_x(viz.label_w)
            imgui.text_disabled(self.message)
