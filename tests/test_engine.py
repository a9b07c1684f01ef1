"""The engine session's API (eg3d_runtime.engine): typed inputs and results, sessions as the only
owners of fast-path state, and the official generator API served through a session. The
numbers of the fast path itself are checked in test_fast_paths.py and test_precision.py."""
import ast
import copy
import gc
import weakref
from pathlib import Path

import pytest
import torch

from eg3d_runtime import load_network_pkl, save_network_pkl, views
from eg3d_runtime.engine import (EngineOptions, FastTriPlaneGenerator, Frame, Precision,
                                 RenderSettings, Session)
from eg3d_runtime.networks.triplane import TriPlaneGenerator
from eg3d_runtime.pickles import module_source

from conftest import REPO, relative_rms


@pytest.fixture(scope='module')
def demo():
    return load_network_pkl(REPO / 'checkpoints' / 'demo.pkl')


@pytest.fixture(scope='module')
def G(demo):
    return demo['G_ema']


def _inputs(G):
    ws = views.seed_ws(G, 3, psi=0.7)
    return ws, views.camera(G, 0.3, -0.1)


def test_settings_are_plain_values_and_refuse_bad_ones():
    a = RenderSettings(nrr=32, overrides={'white_back': True, 'box_warp': 1.5})
    assert a.overrides == (('box_warp', 1.5), ('white_back', True))
    assert a == RenderSettings(nrr=32, overrides=(('box_warp', 1.5), ('white_back', True)))
    assert hash(a) == hash(RenderSettings(nrr=32, overrides={'box_warp': 1.5,
                                                             'white_back': True}))
    options = RenderSettings(depth_resolution=12, empty_space_skipping=True).rendering_options(
        {'depth_resolution': 48, 'box_warp': 1})
    assert options == {'depth_resolution': 12, 'box_warp': 1, 'empty_space_skipping': True}
    with pytest.raises(ValueError, match="noise_mode must be one of const, random, none, got "
                                         "'loud'"):
        RenderSettings(noise_mode='loud')
    for field, value in (('nrr', 0), ('nrr', 32.0), ('depth_resolution', 1),
                         ('depth_resolution_importance', -1), ('nrr', True)):
        with pytest.raises(ValueError, match=f'^{field} must be an integer'):
            RenderSettings(**{field: value})
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Precision('fp8', 'fp32')
    assert Precision.of('bf16') == Precision('bf16', 'bf16')
    assert Precision('fp32', None).describe() == 'backbone fp32, no super-resolution'


def test_a_frame_says_what_ran(G):
    session = Session(G)
    ws, c = _inputs(G)
    frame = session.frame(ws, c)
    assert isinstance(frame, Frame) and frame.planes_computed
    assert frame.image.shape == (1, 3, G.img_resolution, G.img_resolution)
    nrr = G.neural_rendering_resolution
    assert frame.image_raw.shape == (1, 3, nrr, nrr) and frame.image_depth.shape == (1, 1, nrr, nrr)
    assert frame.nrr == nrr and frame.samples == (G.rendering_kwargs['depth_resolution'],
                                                  G.rendering_kwargs['depth_resolution_importance'])
    assert frame.precision == Precision('fp32', 'fp32')       # 'auto' on this CPU (conftest)
    assert list(frame.timings) == ['planes', 'march', 'superresolution']
    assert all(ms > 0 for ms in frame.timings.values())
    planes = session.planes(ws)
    raw = session.frame(ws, c.tolist()[0], RenderSettings(nrr=32, superresolution=False,
                                                          depth_resolution=12), planes)
    assert not raw.planes_computed and raw.image is None and raw.nrr == 32
    assert raw.samples == (12, G.rendering_kwargs['depth_resolution_importance'])
    assert raw.precision.superresolution is None and list(raw.timings) == ['march']
    assert set(raw.as_dict()) == {'image_raw', 'image_depth'}
    assert set(frame.as_dict()) == {'image', 'image_raw', 'image_depth'}


def test_frames_are_the_official_api_s_and_need_no_no_grad(G):
    ws, c = _inputs(G)
    torch.manual_seed(1)
    frame = Session(G).frame(ws, c, RenderSettings(deterministic=True))
    with torch.no_grad():
        official = G.synthesis(ws, c, noise_mode='const', deterministic=True, faithful=True)
    for key, value in frame.as_dict().items():
        assert not value.requires_grad
        assert relative_rms(value, official[key]) < 1e-4, key
    density = Session(G).density(torch.zeros(1, 5, 3), ws)
    assert density.sigma.shape == (1, 5, 1) and density.features.shape == (1, 5, 32)


def test_sessions_of_one_network_are_independent(G):
    """No option state lives on the network: two sessions of one G keep their own precision,
    options and caches."""
    exact, reduced = Session(G, precision='fp32'), Session(G, precision=Precision('fp32', 'bf16'),
                                                           options=EngineOptions(chunk_points=4096))
    ws, c = _inputs(G)
    a = exact.frame(ws, c, RenderSettings(deterministic=True))
    b = reduced.frame(ws, c, RenderSettings(deterministic=True))
    assert a.precision.superresolution == 'fp32' and b.precision.superresolution == 'bf16'
    assert 1e-5 < relative_rms(b.image, a.image) < 1e-2
    assert exact.options.chunk_points is None and exact._backbone[2] is not reduced._backbone[2]


def test_loaded_generators_serve_the_official_api_and_save_as_the_reference_class(demo, G,
                                                                                 tmp_path):
    assert type(G) is FastTriPlaneGenerator and isinstance(G, TriPlaneGenerator)
    assert type(demo['G']) is FastTriPlaneGenerator
    assert G.session.G is G and G.session is G.session
    copied = copy.deepcopy(G)
    assert type(copied) is FastTriPlaneGenerator and '_session' not in vars(copied)
    path = tmp_path / 'saved.pkl'
    save_network_pkl(path, {'training_set_kwargs': None, 'G': G, 'D': demo['D'], 'G_ema': G,
                            'augment_pipe': None})
    assert b'FastTriPlaneGenerator' not in path.read_bytes()
    assert b'TriPlaneGenerator' in path.read_bytes()
    back = load_network_pkl(path)['G_ema']
    assert type(back) is FastTriPlaneGenerator
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(),
                                                  back.state_dict().values()))
    with pytest.raises(ValueError, match='renders another network'):
        G.session = Session(copied)
    reference = TriPlaneGenerator(*G._init_args, **G._init_kwargs)
    assert FastTriPlaneGenerator.serving(reference) is reference
    assert type(reference) is FastTriPlaneGenerator
    assert set(G.state_dict()) - set(reference.state_dict()) == {'dataset_label_std'}


def test_a_dropped_network_frees_its_session_at_once(G):
    """G.session refers to G weakly: no reference cycle keeps a network the viewer let go of,
    and the session's buffers, until the next garbage collection."""
    dropped = copy.deepcopy(G)
    ws, c = _inputs(dropped)
    dropped.session.frame(ws, c, RenderSettings(nrr=16, superresolution=False))
    network, session = weakref.ref(dropped), weakref.ref(dropped.session)
    gc.disable()
    try:
        del dropped
        assert network() is None and session() is None
    finally:
        gc.enable()
    orphan = copy.deepcopy(G).session
    with pytest.raises(ReferenceError, match='lives as long as G'):
        orphan.frame(ws, c)
    held = Session(copy.deepcopy(G))                  # a caller's session keeps its network
    gc.collect()
    assert held.frame(ws, c, RenderSettings(nrr=16, superresolution=False)).image_raw.shape[-1] \
        == 16


def test_the_reference_network_knows_no_fast_path():
    """TriPlaneGenerator and the source saved in pickles import nothing of the engine."""
    source = module_source.bundle_source()
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert not names & {'fastpath', 'Session', 'session'}
    path = Path(__file__).resolve().parents[1] / 'eg3d_runtime' / 'networks' / 'triplane.py'
    imported = {node.module for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom)}
    assert not any(m and ('fast' in m or 'engine' in m) for m in imported)


# What outside eg3d_runtime/engine may import from eg3d_runtime/fast: the commands' --precision
# option and, for shape export, the tri-plane (PanoHead: tri-grid) lookup table it fills with
# folded planes.
ALLOWED_FAST_IMPORTS = {'precision', 'render.PlaneTable', 'tri_grid.TriGridTable'}


def test_only_the_engine_reaches_into_the_fast_path():
    repo = Path(__file__).resolve().parents[1]
    sources = [p for p in repo.glob('**/*.py') if '.venv' not in p.parts and 'tests' not in p.parts
               and 'fast' not in p.relative_to(repo).parts[:2]
               and 'engine' not in p.relative_to(repo).parts[:2]]
    found = set()
    for path in sources:
        package = '.'.join(path.relative_to(repo).parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = node.module or ''
            if node.level:                       # relative: resolve against the package
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([module] if module else []))
            if module == 'eg3d_runtime.fast':
                found |= {(path.name, alias.name) for alias in node.names}
            elif module.startswith('eg3d_runtime.fast.'):
                rest = module[len('eg3d_runtime.fast.'):]
                found |= {(path.name, f'{rest}.{alias.name}') for alias in node.names}
    assert {what for _, what in found} <= ALLOWED_FAST_IMPORTS, sorted(found)
