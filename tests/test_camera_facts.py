"""Each family's camera is declared once, in eg3d_runtime/configs.py: every place that uses a
radius, look-at point, field of view or video focal length reads it from there, and the app's
source writes none of them as a literal anywhere else."""
import ast
import math
from pathlib import Path

import pytest
import torch

from checkpoints import registry
from eg3d_runtime import cameras, configs, procedural
from eg3d_runtime.configs import DEFAULT_CAMERA, FAMILY_CAMERAS
from eg3d_runtime.frames.render_args import RenderArgs
from eg3d_runtime.networks.panohead import PANOHEAD_OPTIONS
from eg3d_runtime.video import orbit

REPO = Path(__file__).resolve().parents[1]
APP = ('eg3d_runtime', 'viz', 'gui_utils', 'checkpoints', 'visualizer.py', 'shapes_export.py')
# Radii, the AFHQ pivot's z, the field of view and the video focal lengths: numbers that mean a
# camera wherever they appear (0 and 0.2 are too common to look for).
CAMERA_NUMBERS = {2.7, 1.7, -0.06, 18.837, 4.2647, 1.7074}


def _numbers(path):
    """(line, value) of every float literal of a module, a leading minus sign included."""
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, float):
                yield node.lineno, -value
        elif isinstance(node, ast.Constant) and isinstance(node.value, float):
            yield node.lineno, node.value


def test_no_camera_number_outside_configs():
    paths = [p for top in APP for p in ((REPO / top,) if top.endswith('.py')
                                        else (REPO / top).rglob('*.py'))]
    assert len(paths) > 50
    found = sorted(f'{path.relative_to(REPO)}:{line}: {value}' for path in paths
                   if path != REPO / 'eg3d_runtime/configs.py'
                   for line, value in _numbers(path) if value in CAMERA_NUMBERS)
    assert not found, found


def test_the_official_cameras():
    """docs/eg3d-reference.md 4.1 and 5: train.py's avg_camera_radius / avg_camera_pivot, the
    scripts' 18.837 degrees, gen_videos.py's focal lengths."""
    assert {f: (c.radius, c.pivot) for f, c in FAMILY_CAMERAS.items()} == {
        'ffhq': (2.7, (0, 0, 0.2)), 'afhq': (2.7, (0, 0, -0.06)), 'shapenet': (1.7, (0, 0, 0)),
        'panohead': (2.7, (0, 0, 0)), 'demo': (2.7, (0, 0, 0))}
    assert configs.FFHQ_FOV_DEGREES == 18.837 and DEFAULT_CAMERA == FAMILY_CAMERAS['ffhq']
    assert configs.VIDEO_FOCALS == {'FFHQ': 4.2647, 'AFHQ': 4.2647, 'Shapenet': 1.7074,
                                    'Head': 4.2647}


@pytest.mark.parametrize('cfg', sorted(configs.CFG_RENDERING))
def test_train_py_rendering_options_carry_the_family_camera(cfg):
    rk = configs.rendering_kwargs(cfg)
    camera = FAMILY_CAMERAS[cfg]
    assert rk['avg_camera_radius'] == camera.radius
    assert rk['avg_camera_pivot'] == list(camera.pivot)     # a list, as train.py stores it
    assert list(rk)[-2:] == ['avg_camera_radius', 'avg_camera_pivot']


def test_released_checkpoints_start_at_their_family_fov():
    for checkpoint in registry.RELEASED.values():
        assert checkpoint.fov_degrees == FAMILY_CAMERAS[checkpoint.family].fov_degrees
    assert registry.RELEASED['shapenetcars128-64'].fov_degrees == 45.0


def test_video_focals_are_the_family_fovs():
    """gen_videos.py's focal lengths and the families' fields of view are one camera each, in
    the two official conventions (they differ by the scripts' rounding)."""
    assert orbit.FOCALS == configs.VIDEO_FOCALS
    for cfg, family in configs.VIDEO_CFGS.items():
        fov = orbit.fov_for_focal(orbit.FOCALS[cfg])
        assert fov == pytest.approx(FAMILY_CAMERAS[family].fov_degrees, abs=0.01), cfg
    assert orbit.HEAD_PIVOT == FAMILY_CAMERAS['panohead'].pivot


def test_cameras_default_to_the_official_camera():
    explicit = cameras.orbit_camera(0.3, -0.1, configs.FFHQ_FOV_DEGREES, DEFAULT_CAMERA.radius,
                                    DEFAULT_CAMERA.pivot)
    assert torch.equal(cameras.orbit_camera(0.3, -0.1), explicit)
    assert torch.equal(cameras.orbit_camera_for({}, 0.3, -0.1), explicit)
    assert RenderArgs().fov_degrees == configs.FFHQ_FOV_DEGREES
    assert cameras.network_pivot({}) == DEFAULT_CAMERA.pivot
    panohead = {PANOHEAD_OPTIONS[0]: 1, 'avg_camera_pivot': [0, 0, 0.2]}
    assert cameras.network_pivot(panohead) == FAMILY_CAMERAS['panohead'].pivot


def test_the_demo_data_is_seen_by_the_demo_camera():
    c = torch.as_tensor(procedural.orbit_label(0.4, 0.2))
    position = c[:16].reshape(4, 4)[:3, 3]
    assert math.isclose(position.norm().item(), FAMILY_CAMERAS['demo'].radius, rel_tol=1e-6)
    assert torch.equal(c[16:], cameras.fov_to_intrinsics(FAMILY_CAMERAS['demo'].fov_degrees)
                       .reshape(9))
