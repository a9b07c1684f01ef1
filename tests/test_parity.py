"""Our faithful path against the official numbers of the fixture (relative RMS error)."""
import pytest
import torch

from eg3d_runtime import cameras

from conftest import relative_rms

CASES = range(3)


@pytest.mark.parametrize('i', CASES)
def test_cameras_match_official(reference, i):
    ref, meta = reference
    case = meta['cases'][i]
    c = cameras.orbit_camera(case['yaw'], case['pitch'])
    cond = cameras.orbit_camera(meta['cond_yaw'], meta['cond_pitch'])
    assert torch.allclose(c, torch.from_numpy(ref[f'c{i}']), atol=1e-6)
    assert torch.allclose(cond, torch.from_numpy(ref[f'cond_c{i}']), atol=1e-6)


@pytest.mark.parametrize('i', CASES)
def test_mapping_matches_official(fixture_G, reference, i):
    ref, meta = reference
    case = meta['cases'][i]
    ws = fixture_G.mapping(torch.from_numpy(ref[f'z{i}']), torch.from_numpy(ref[f'cond_c{i}']),
                           truncation_psi=case['psi'], truncation_cutoff=case['truncation_cutoff'])
    assert ws.shape == (1, 14, 512)
    assert relative_rms(ws, ref[f'ws{i}']) < 1e-4


@pytest.mark.parametrize('i', CASES)
def test_synthesis_matches_official(fixture_G, reference, i):
    ref, meta = reference
    case = meta['cases'][i]
    nrr = case['neural_rendering_resolution']
    with torch.no_grad():
        out = fixture_G.synthesis(torch.from_numpy(ref[f'ws{i}']), torch.from_numpy(ref[f'c{i}']),
                                  neural_rendering_resolution=nrr, noise_mode='const',
                                  deterministic=True, faithful=True)
    assert out['image'].shape == (1, 3, 512, 512)
    assert out['image_raw'].shape == (1, 3, nrr, nrr)
    assert out['image_depth'].shape == (1, 1, nrr, nrr)
    for key in ('image', 'image_raw', 'image_depth'):
        assert relative_rms(out[key], ref[f'{key}{i}']) < 1e-3, key


def test_generate_seed_convention_matches_fixture(fixture_G, reference):
    from eg3d_runtime.views import latent
    ref, meta = reference
    for i, case in enumerate(meta['cases']):
        assert torch.equal(latent(case['seed'], fixture_G.z_dim), torch.from_numpy(ref[f'z{i}']))


def test_probe_density_matches_official(fixture_G, reference):
    ref, _ = reference
    points = torch.from_numpy(ref['probe_points'])
    with torch.no_grad():
        out = fixture_G.sample_mixed(points, torch.zeros_like(points),
                                     torch.from_numpy(ref['probe_ws']), noise_mode='const',
                                     faithful=True)
    assert out['sigma'].shape == (*points.shape[:2], 1)
    assert out['rgb'].shape == (*points.shape[:2], 32)
    assert relative_rms(out['sigma'], ref['probe_sigma']) < 1e-3


def test_backbone_cache_reuses_planes(fixture_G, reference):
    ref, _ = reference
    ws = torch.from_numpy(ref['ws0'])
    c0, c1 = torch.from_numpy(ref['c0']), torch.from_numpy(ref['c1'])
    kw = dict(neural_rendering_resolution=32, noise_mode='const', deterministic=True,
              faithful=True)
    with torch.no_grad():
        fixture_G.synthesis(ws, c0, cache_backbone=True, **kw)
        cached = fixture_G.synthesis(ws * 0, c1, use_cached_backbone=True, **kw)['image_raw']
        fresh = fixture_G.synthesis(ws, c1, **kw)['image_raw']
    assert torch.allclose(cached, fresh, atol=1e-6)


def test_preview_options(fixture_G, reference):
    ref, _ = reference
    ws, c = torch.from_numpy(ref['ws0']), torch.from_numpy(ref['c0'])
    with torch.no_grad():
        out = fixture_G.synthesis(ws, c, neural_rendering_resolution=16, noise_mode='const',
                                  superresolution=False, deterministic=True, faithful=True,
                                  rendering_overrides={'depth_resolution': 12,
                                                       'depth_resolution_importance': 0})
    assert set(out) == {'image_raw', 'image_depth'}
    assert out['image_raw'].shape == (1, 3, 16, 16)
    assert fixture_G.rendering_kwargs['depth_resolution'] == 48
