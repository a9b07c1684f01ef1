"""Videos of a network, as the official gen_videos.py makes them, one idea per module: orbit (the
camera path and the focal of each --cfg), keyframes (the seeds' layout and the spline between
their ws), renderer (an engine session's frames along the path, as pictures), shapes (each
frame's shape for --shapes), files (MP4/WebP/GIF written all or nothing). The gen_videos command,
the viewer's capture widget and inversion's orbit video use them.

The package imports nothing itself, so that a command names its options (orbit.FOCALS,
files.FORMATS) before torch is loaded."""


class VideoError(Exception):
    """A problem the user can fix, reported as one line."""
