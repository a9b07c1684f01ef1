"""The viewer on a PanoHead network under Xvfb: the orbit goes all the way round, the
conditioning pose in PanoHead's --pose_cond degrees, the background toggle, the mask, compare
with an EG3D network, and mesh export within the crop box."""
import math
import subprocess

import numpy as np
import pytest
import torch

from eg3d_runtime import cameras, views

from conftest import frames


def xdotool(*args):
    subprocess.run(['xdotool', *map(str, args)], check=True, timeout=10)


def _viewer(pkls, *extra):
    import glfw

    from gui_utils import platform
    platform.configure(False)
    from viz.app import Visualizer
    from visualizer import build_parser
    options = build_parser().parse_args([*map(str, pkls), '--nrr', '16', '--width', '1200',
                                         '--height', '700', *extra])
    viz = Visualizer(options)
    viz.render_widget.depth_mult = viz.render_widget.importance_mult = 0.25
    glfw.set_window_pos(viz.window.handle, 0, 0)
    return viz


@pytest.fixture
def panohead_viewer(xvfb_display, panohead_pkl, user_dirs):
    viz = _viewer([panohead_pkl], '--render-type', 'image_raw')
    yield viz
    viz.close()


def _drag(viz, dx, steps=6):
    x0, y0 = viz.pane_w + 300, 300
    xdotool('mousemove', x0, y0)
    frames(viz)
    xdotool('mousedown', 1)
    frames(viz)
    for step in range(1, steps + 1):
        xdotool('mousemove', x0 + dx * step // steps, y0)
        frames(viz, 2)
    xdotool('mouseup', 1)
    frames(viz)


def test_orbit_goes_all_the_way_round(panohead_viewer):
    viz = panohead_viewer
    assert viz.settle(timeout=300)
    assert viz.network.panohead
    viz.pose_widget.yaw = 3.0
    before = viz.pose_widget.yaw
    _drag(viz, -300)                 # a leftward drag turns the yaw up, past +pi
    yaw = viz.pose_widget.yaw
    assert -math.pi <= yaw < math.pi
    assert yaw < before < math.pi and yaw + 2 * math.pi > before    # wrapped, not clamped
    assert viz.settle(timeout=300)
    assert viz.viewport.result.args.yaw == yaw and viz.viewport.result.image is not None


def test_pose_cond_is_panohead_degrees(panohead_viewer, panohead_G):
    viz = panohead_viewer
    assert viz.settle(timeout=300)
    widget = viz.cond_pose_widget
    assert round(widget.pose_cond) == 90 and viz.render_args().cond_yaw == 0
    widget.yaw = cameras.pose_cond_yaw(45)
    widget.pitch = 0.4                              # PanoHead's convention keeps pitch frontal
    args = viz.render_args()
    assert args.cond_pitch == 0 and round(widget.pose_cond) == 45
    assert viz.settle(timeout=300)
    expected = views.seed_ws(panohead_G, 0, args.psi, args.cutoff, args.fov_degrees,
                             cond_yaw=cameras.pose_cond_yaw(45))
    assert torch.allclose(viz.viewport.result.ws, expected, atol=1e-5)


def test_background_toggle_and_mask(panohead_viewer, panohead_G):
    viz = panohead_viewer
    assert viz.settle(timeout=300)
    with_background = viz.viewport.result.host_image.copy()
    viz.render_widget.background = False
    frames(viz, 2)
    assert viz.settle(timeout=300)
    alone = viz.viewport.result.host_image
    assert not np.array_equal(alone, with_background)
    assert 'image_mask' in viz.render_widget.render_types()
    viz.render_widget.render_type = 'image_mask'
    assert viz.settle(timeout=300)
    result = viz.viewport.result
    mask = result.host_image
    assert mask.shape == (16, 16, 3) and np.array_equal(mask[..., 0], mask[..., 2])
    args = result.args
    torch.manual_seed(args.noise_seed)              # the viewer's seed of the depth jitter
    with torch.no_grad():
        out = panohead_G.synthesis(result.ws, views.camera(panohead_G, args.yaw, args.pitch),
                                   neural_rendering_resolution=16, noise_mode='const',
                                   superresolution=False, rendering_overrides={
                                       'depth_resolution': result.samples[0],
                                       'depth_resolution_importance': result.samples[1]})
    expected = views.mask_to_uint8(out['image_mask']).numpy()
    assert np.abs(mask[..., 0].astype(int) - expected).max() <= 1


def test_mesh_export_ends_at_the_crop_box(panohead_viewer, tmp_path):
    import trimesh
    viz = panohead_viewer
    assert viz.settle(timeout=300)
    mesh = viz.mesh_widget
    mesh.directory = str(tmp_path / 'meshes')
    mesh.resolution, mesh.format, mesh.level, mesh.coarse_to_fine = 64, 'ply', 0.0, False
    assert mesh.start()
    while mesh.running:
        frames(viz, 1)
    assert mesh.message.startswith('saved '), mesh.message
    vertices = trimesh.load(tmp_path / 'meshes' / '00001.ply').vertices
    voxel = 1 / 63
    assert np.abs(vertices[:, [0, 2]]).max() <= 0.4 + voxel
    assert np.abs(vertices[:, 1]).max() > 0.4 - voxel            # y is not cropped


def test_compare_eg3d_and_panohead(xvfb_display, fixture_pkl, panohead_pkl, user_dirs):
    viz = _viewer([fixture_pkl, panohead_pkl], '--compare', '--render-type', 'image_raw')
    try:
        assert viz.settle(timeout=300)
        assert set(viz.compare.images) == {0, 1}
        warning = viz.compare._camera_warning(1)
        assert 'pivot' in warning and 'pose_cond (PanoHead)' in warning
        viz.render_widget.render_type = 'image_mask'         # an EG3D panel has no mask
        assert viz.settle(timeout=300)
        assert 'only PanoHead networks' in (viz.compare.results[0].message or '')
        assert viz.compare.results[1].image is not None
    finally:
        viz.close()


def test_command_line_pose_cond_and_background(xvfb_display, panohead_pkl, user_dirs):
    viz = _viewer([panohead_pkl], '--pose-cond', '120', '--no-background')
    try:
        args = viz.render_args()
        assert math.isclose(args.cond_yaw, math.radians(30)) and not args.background
    finally:
        viz.close()
