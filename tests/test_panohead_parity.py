"""The reference path of a PanoHead network against PanoHead's own outputs (the fixture's four
cases, its `G(z, c)` call with the camera offset, the density probe); relative RMS error."""
import pytest
import torch

from eg3d_runtime import cameras, views
from eg3d_runtime.networks.panohead import PanoHeadGenerator

from conftest import relative_rms

OUTPUTS = ('image', 'image_raw', 'image_depth', 'image_mask')


def _tensor(ref, key):
    return torch.from_numpy(ref[key])


def _camera(G, meta, yaw, pitch):
    cam = meta['camera']
    return cameras.orbit_camera(yaw, pitch, cam['fov_deg'], radius=cam['radius'],
                                pivot=cam['pivot'])


def test_fixture_is_panohead(panohead_G, panohead_reference):
    _, meta = panohead_reference
    assert isinstance(panohead_G, PanoHeadGenerator)
    assert tuple(cameras.network_pivot(panohead_G.rendering_kwargs)) == tuple(
        meta['camera']['pivot'])
    assert panohead_G.rendering_kwargs['avg_camera_radius'] == meta['camera']['radius']


@pytest.mark.parametrize('i', range(4))
def test_cameras_and_mapping_match(panohead_G, panohead_reference, i):
    ref, meta = panohead_reference
    case = meta['cases'][i]
    c = views.camera(panohead_G, case['yaw'], case['pitch'], meta['camera']['fov_deg'])
    cond = views.camera(panohead_G, 0.0, 0.0, meta['camera']['fov_deg'])   # pose_cond 90
    assert meta['camera']['pose_cond_deg'] == 90
    assert torch.allclose(c, _tensor(ref, f'c{i}'), atol=1e-6)
    assert torch.allclose(cond, _tensor(ref, f'cond_c{i}'), atol=1e-6)
    assert torch.equal(views.latent(case['seed'], panohead_G.z_dim), _tensor(ref, f'z{i}'))
    ws = views.seed_ws(panohead_G, case['seed'], case['psi'], case['truncation_cutoff'],
                       meta['camera']['fov_deg'])
    assert relative_rms(ws, ref[f'ws{i}']) < 1e-4


@pytest.mark.parametrize('i', range(4))
def test_synthesis_matches_panohead(panohead_G, panohead_reference, i):
    ref, meta = panohead_reference
    nrr = meta['cases'][i]['neural_rendering_resolution']
    with torch.no_grad():
        out = panohead_G.synthesis(_tensor(ref, f'ws{i}'), _tensor(ref, f'c{i}'),
                                   neural_rendering_resolution=nrr, noise_mode='const',
                                   deterministic=True, faithful=True)
    res = panohead_G.img_resolution
    assert out['image'].shape == (1, 3, res, res)
    assert out['image_mask'].shape == out['image_depth'].shape == (1, 1, nrr, nrr)
    for key in OUTPUTS:
        assert relative_rms(out[key], ref[f'{key}{i}']) < 1e-3, key


def test_forward_applies_the_camera_offset(panohead_G, panohead_reference):
    ref, meta = panohead_reference
    case = meta['forward_case']
    z, c = _tensor(ref, 'fwd_z'), _tensor(ref, 'fwd_c')
    trunc = dict(truncation_psi=case['psi'], truncation_cutoff=case['truncation_cutoff'])
    assert torch.allclose(_camera(panohead_G, meta, case['yaw'], case['pitch']), c, atol=1e-6)
    with torch.no_grad():
        moved, delta = panohead_G.apply_delta_c(z, c, **trunc)
        out = panohead_G(z, c, neural_rendering_resolution=case['neural_rendering_resolution'],
                         noise_mode='const', deterministic=True, faithful=True, **trunc)
    assert relative_rms(delta, ref['fwd_delta_c']) < 1e-4
    assert torch.allclose(moved, _tensor(ref, 'fwd_c_new'), atol=1e-6)
    assert float(delta.abs().max()) > 1e-3              # the offset is not a no-op here
    for key in OUTPUTS:
        assert relative_rms(out[key], ref[f'fwd_{key}']) < 1e-3, key


def test_probe_density_matches_panohead(panohead_G, panohead_reference):
    """Raw density at points inside and outside the crop box: the probe is not cropped."""
    ref, _ = panohead_reference
    points = _tensor(ref, 'probe_points')
    with torch.no_grad():
        out = panohead_G.sample_mixed(points, torch.zeros_like(points),
                                      _tensor(ref, 'probe_ws'), noise_mode='const',
                                      faithful=True)
    assert out['sigma'].shape == (*points.shape[:2], 1)
    assert out['rgb'].shape == (*points.shape[:2], 32)
    assert bool((points[..., [0, 2]].abs() > 0.4).any())
    assert relative_rms(out['sigma'], ref['probe_sigma']) < 1e-3


def test_background_toggle_and_mask(panohead_G, panohead_reference):
    """Without the background network the raw image differs only where rays are transparent,
    and the mask is the same."""
    ref, _ = panohead_reference
    ws, c = _tensor(ref, 'ws0'), _tensor(ref, 'c0')
    kw = dict(neural_rendering_resolution=32, noise_mode='const', deterministic=True,
              faithful=True, superresolution=False)
    with torch.no_grad():
        full = panohead_G.synthesis(ws, c, **kw)
        alone = panohead_G.synthesis(ws, c, background=False, **kw)
    assert set(full) == {'image_raw', 'image_depth', 'image_mask'}
    assert torch.equal(full['image_mask'], alone['image_mask'])
    change = (full['image_raw'] - alone['image_raw']).abs().amax(1, keepdim=True)
    opaque = full['image_mask'] > 0.999
    assert float(change[~opaque].max()) > 1e-3
    if opaque.any():
        assert float(change[opaque].max()) < 1e-2 * float(change.max())
