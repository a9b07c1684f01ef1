"""The official video camera: the orbit path of gen_videos.py and the focal length of each --cfg
(docs/eg3d-reference.md 6.3; PanoHead's full turn: docs/panohead-reference.md 4)."""
import math

from .. import configs

# The official focal lengths per --cfg; views.camera takes the FOV that gives them.
FOCALS = configs.VIDEO_FOCALS
HEAD_PIVOT = configs.FAMILY_CAMERAS['panohead'].pivot   # PanoHead's --cfg Head looks at the origin
# The official orbit is centred on (3.14/2, 3.14/2), views.camera's on (pi/2, pi/2).
OFFSET = 3.14 / 2 - math.pi / 2


def fov_for_focal(focal):
    """The FOV in the official convention (cameras.fov_to_intrinsics) whose focal is `focal`."""
    return math.atan(1 / (focal * 1.414)) * 360 / 3.14159


def orbit_angles(frame, num_frames, cfg='FFHQ'):
    """(yaw, pitch) for views.camera at `frame` of `num_frames`: the official path, yaw
    0.35 sin and pitch -0.05 + 0.25 cos of 2*3.14*frame/num_frames; PanoHead's --cfg Head
    turns all the way round, yaw 2*3.14*frame/num_frames, pitch -0.05 + 0.5 sin."""
    t = 2 * 3.14 * frame / num_frames
    if cfg == 'Head':
        return OFFSET + t, OFFSET - 0.05 + 0.5 * math.sin(t)
    return OFFSET + 0.35 * math.sin(t), OFFSET - 0.05 + 0.25 * math.cos(t)
