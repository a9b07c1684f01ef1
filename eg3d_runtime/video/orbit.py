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


# The official orbit: yaw swings ORBIT_YAW either side, pitch ORBIT_PITCH about a centre
# ORBIT_DIP below the pose; PanoHead's full turn swings pitch by HEAD_PITCH.
ORBIT_YAW, ORBIT_PITCH, ORBIT_DIP, HEAD_PITCH = 0.35, 0.25, 0.05, 0.5
OFFICIAL_PI = 3.14          # the official scripts' pi: their orbit does not quite close


def orbit_pose(frame, num_frames, yaw0=0.0, pitch0=0.0, full_turn=False, pi=OFFICIAL_PI):
    """(yaw, pitch) at `frame` of `num_frames` of the official video orbit around the pose
    (yaw0, pitch0), t = 2 pi frame / num_frames: yaw0 + 0.35 sin t, pitch0 - 0.05 + 0.25 cos t;
    `full_turn` (PanoHead's --cfg Head) turns all the way round: yaw0 + t, pitch0 - 0.05 +
    0.5 sin t. The video command keeps the official 3.14; the viewer's recording passes
    math.pi, so that its loop closes."""
    t = 2 * pi * frame / num_frames
    if full_turn:
        return yaw0 + t, pitch0 - ORBIT_DIP + HEAD_PITCH * math.sin(t)
    return yaw0 + ORBIT_YAW * math.sin(t), pitch0 - ORBIT_DIP + ORBIT_PITCH * math.cos(t)


def orbit_angles(frame, num_frames, cfg='FFHQ'):
    """(yaw, pitch) for views.camera at `frame` of `num_frames` of gen_videos' --cfg: the
    official orbit around the frontal pose."""
    return orbit_pose(frame, num_frames, OFFSET, OFFSET, full_turn=cfg == 'Head')
