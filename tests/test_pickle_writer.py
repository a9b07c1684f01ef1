"""Snapshots written by eg3d_runtime.pickles.writer: official structure, read back bit-exactly by
our safe loader and by an official-style loader that execs the embedded source (simulated with
stand-ins for torch_utils, dnnlib and the official plain classes), and written atomically."""
import ast
import copy
import io
import os
import pickle
import pickletools
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from eg3d_runtime import cameras, load_network_pkl, save_network_pkl
from eg3d_runtime.pickles import module_source
from eg3d_runtime.pickles import writer as pickle_writer
from eg3d_runtime.networks.discriminator import DualDiscriminator
from eg3d_runtime.networks.triplane import TriPlaneGenerator
from eg3d_runtime.pickles.safe_unpickle import EasyDict, PersistentRecord, PlainRecord, safe_load
from eg3d_runtime.networks.augment import AugmentPipe

from conftest import REPO, relative_rms

RENDERING_KWARGS = {
    'image_resolution': 128, 'disparity_space_sampling': False, 'clamp_mode': 'softplus',
    'superresolution_module': 'training.superresolution.SuperresolutionHybrid2X',
    'c_gen_conditioning_zero': False, 'c_scale': 1.0, 'superresolution_noise_mode': 'none',
    'decoder_lr_mul': 1.0, 'sr_antialias': True, 'depth_resolution': 8,
    'depth_resolution_importance': 8, 'ray_start': 2.25, 'ray_end': 3.3, 'box_warp': 1,
    'avg_camera_radius': 2.7, 'avg_camera_pivot': [0, 0, 0.2]}
TRAINING_SET_KWARGS = {'class_name': 'training.dataset.ImageFolderDataset', 'path': 'data.zip',
                       'use_labels': True, 'max_size': 10, 'xflip': False, 'resolution': 128,
                       'random_seed': 0}
# Spec 1.8: every global of an official snapshot (outer stream) ...
OFFICIAL_GLOBALS = {
    ('torch_utils.persistence', '_reconstruct_persistent_obj'), ('collections', 'OrderedDict'),
    ('dnnlib.util', 'EasyDict'), ('torch._utils', '_rebuild_tensor_v2'),
    ('torch._utils', '_rebuild_parameter'), ('torch.storage', '_load_from_bytes'),
    ('numpy.core.multiarray', 'scalar'), ('numpy', 'dtype'),
    ('training.triplane', 'OSGDecoder'),
    ('training.volumetric_rendering.renderer', 'ImportanceRenderer'),
    ('training.volumetric_rendering.ray_sampler', 'RaySampler'),
    ('training.volumetric_rendering.ray_marcher', 'MipRayMarcher2'),
    ('torch.nn.modules.container', 'Sequential'), ('torch.nn.modules.activation', 'Softplus')}
STORAGE_GLOBALS = {('torch', 'FloatStorage')}  # ... and of the storage streams inside it
NRR = 16


def _tiny_networks():
    """A generator, discriminator and augment pipe as train.py builds them, at toy size."""
    torch.manual_seed(1)
    G = TriPlaneGenerator(
        z_dim=512, w_dim=512, mapping_kwargs=EasyDict(num_layers=2), channel_base=256,
        channel_max=16, fused_modconv_default='inference_only',
        rendering_kwargs=dict(RENDERING_KWARGS), num_fp16_res=0, conv_clamp=None,
        sr_num_fp16_res=4, sr_kwargs=EasyDict(channel_base=256, channel_max=16,
                                              fused_modconv_default='inference_only'),
        c_dim=25, img_resolution=128, img_channels=3)
    G.register_buffer('dataset_label_std', torch.rand(25))  # the training loop adds it
    G.neural_rendering_resolution = NRR
    D = DualDiscriminator(c_dim=25, img_resolution=128, img_channels=3, channel_base=256,
                          channel_max=16, block_kwargs=EasyDict(freeze_layers=0),
                          mapping_kwargs=EasyDict(), epilogue_kwargs=EasyDict(mbstd_group_size=2))
    pipe = AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                       brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    pipe.p.fill_(0.25)
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()):
            p.add_(torch.randn_like(p) * 0.1)  # no zero-initialised values left
    return G.eval(), D.eval(), pipe


@pytest.fixture(scope='module')
def networks():
    G, D, pipe = _tiny_networks()
    G_ema = TriPlaneGenerator(*G._init_args, **G._init_kwargs)
    G_ema.register_buffer('dataset_label_std', G.dataset_label_std.clone())
    G_ema.load_state_dict(G.state_dict())
    G_ema.neural_rendering_resolution = NRR
    G_ema.eval()
    return {'training_set_kwargs': TRAINING_SET_KWARGS, 'G': G, 'D': D, 'G_ema': G_ema,
            'augment_pipe': pipe}


@pytest.fixture(scope='module')
def snapshot(networks, tmp_path_factory):
    path = tmp_path_factory.mktemp('snapshot') / 'network-snapshot-000004.pkl'
    save_network_pkl(path, networks)
    return path


def _inputs(batch=1):
    z = torch.from_numpy(np.random.RandomState(5).randn(batch, 512).astype(np.float32))
    c = torch.cat([cameras.orbit_camera(0.3 * i, -0.1 * i) for i in range(batch)])
    return z, c


def _outputs(G, D, z, c, **kwargs):
    torch.manual_seed(7)
    with torch.no_grad():
        out = G(z, c, neural_rendering_resolution=NRR, noise_mode='const', **kwargs)
        return {**out, 'logits': D(out, c)}


def _globals(data):
    """(module, name) of every global a pickle stream names (STACK_GLOBAL or GLOBAL)."""
    found, memo, recent = set(), {}, []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE'):
            recent.append(arg)
        elif op.name in ('BINGET', 'LONG_BINGET', 'GET'):
            recent.append(memo.get(arg))
        elif op.name == 'MEMOIZE':
            memo[len(memo)] = recent[-1] if recent else None
        elif op.name == 'STACK_GLOBAL':
            found.add(tuple(recent[-2:]))
            recent.append(None)
        elif op.name == 'GLOBAL':
            found.add(tuple(arg.split(' ', 1)))
        elif op.name != 'FRAME':
            recent.append(None)
        if op.name == 'STOP':
            break
    return found


# ------------------------------------------------------------------------------------------------
# constructor arguments and the bundled source


def test_networks_record_their_constructor_arguments(networks):
    G, D = networks['G'], networks['D']
    assert G._init_args == () and G._init_kwargs['rendering_kwargs'] == RENDERING_KWARGS
    assert G._init_kwargs['rendering_kwargs'] is not G.rendering_kwargs  # a deep copy
    assert isinstance(G._init_kwargs['sr_kwargs'], EasyDict)
    assert G.backbone.mapping.fc0._init_kwargs == {'activation': 'lrelu', 'lr_multiplier': 0.01}
    assert G.superresolution._init_kwargs['img_resolution'] == 128     # inherited constructor
    assert G.superresolution.block0._init_args == (32, 128)            # SynthesisBlockNoUp
    assert D.b4.mbstd._init_args == (2, 1)
    assert networks['augment_pipe']._init_kwargs['xflip'] == 1
    # plain classes stay plain (docs/eg3d-reference.md 1.4)
    assert '_init_args' not in G.decoder.__dict__


def test_bundle_is_cached_and_imports_only_torch_numpy_stdlib():
    source = module_source.bundle_source()
    assert source is module_source.bundle_source()
    allowed = {'torch', 'numpy'} | set(sys.stdlib_module_names)
    assert module_source.imported_roots(source) <= allowed
    tree = ast.parse(source)
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {'TriPlaneGenerator', 'DualDiscriminator', 'AugmentPipe', 'SynthesisBlockNoUp',
            'SuperresolutionHybrid8XDC', 'OSGDecoder', 'ImportanceRenderer'} <= classes


def test_forbidden_imports_stop_the_bundle():
    with pytest.raises(module_source.BundleError, match='scipy'):
        module_source.check_source('import scipy.signal\n')
    with pytest.raises(module_source.BundleError, match='relative'):
        module_source.check_source('def f():\n    from . import fastpath\n')
    with pytest.raises(module_source.BundleError, match="'np'"):
        module_source.check_source('import numpy as np\n', {'np': 'eg3d_runtime/x.py'})


# ------------------------------------------------------------------------------------------------
# our loader


def test_round_trip_is_bit_exact(networks, snapshot):
    back = load_network_pkl(snapshot)
    assert back['training_set_kwargs'] == TRAINING_SET_KWARGS
    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        ours, theirs = networks[key].state_dict(), back[key].state_dict()
        assert list(ours) == list(theirs), key
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), key
    for key in ('G', 'G_ema'):
        assert back[key].rendering_kwargs == RENDERING_KWARGS
        assert back[key].neural_rendering_resolution == NRR
    z, c = _inputs()
    expected = _outputs(networks['G_ema'], networks['D'], z, c)      # the reference class
    actual = _outputs(back['G_ema'], back['D'], z, c, faithful=True)  # loaded: engine-served
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


def test_saving_leaves_the_live_networks_alone(networks, tmp_path):
    G = networks['G']
    G.train().requires_grad_(True)
    try:
        save_network_pkl(tmp_path / 'a.pkl', networks)
        assert G.training and all(p.requires_grad for p in G.parameters())
    finally:
        G.eval().requires_grad_(False)


def test_official_structure(networks, snapshot, fixture_pkl):
    data = snapshot.read_bytes()
    assert data[:2] == b'\x80\x04'  # protocol 4, like pickle.dump on the official Pythons
    assert _globals(data) == OFFICIAL_GLOBALS
    assert data.count(module_source.bundle_source().encode('utf-8')) == 1  # memoized once
    payload = next(arg for op, arg, _ in pickletools.genops(data)
                   if isinstance(arg, bytes) and len(arg) > 100)  # a storage's torch.save stream
    stream = io.BytesIO(payload)  # magic, protocol, system info, storage, storage keys
    assert [_globals(stream) for _ in range(5)] == [set()] * 3 + [STORAGE_GLOBALS, set()]

    raw = safe_load(snapshot)
    assert list(raw) == ['training_set_kwargs', 'G', 'D', 'G_ema', 'augment_pipe']
    G = raw['G_ema']
    assert isinstance(G.state['_init_kwargs']['mapping_kwargs'], EasyDict)
    assert G.state['training'] is False and G.state['_last_planes'] is None
    renderer, sampler = G.state['_modules']['renderer'], G.state['_modules']['ray_sampler']
    fixture = safe_load(fixture_pkl)['G_ema']
    fixture_renderer = fixture.state['_modules']['renderer']
    assert torch.equal(renderer.state['plane_axes'], fixture_renderer.state['plane_axes'])
    assert list(renderer.state) == list(fixture_renderer.state)
    assert renderer.state['_modules']['ray_marcher'].qualname.endswith('MipRayMarcher2')
    assert list(sampler.state) == list(fixture.state['_modules']['ray_sampler'].state)
    assert G.state['_modules']['decoder'].state['hidden_dim'] == 64

    def check(node, name):
        if isinstance(node, PersistentRecord):
            assert {'_init_args', '_init_kwargs'} <= set(node.state), name
        assert node.state['training'] is False, name
        for param in (node.state['_parameters'] or {}).values():
            assert param is None or param.dtype == torch.float32, name
        for child_name, child in node.state['_modules'].items():
            if child is not None:
                check(child, f'{name}.{child_name}')

    for key in ('G', 'D', 'G_ema', 'augment_pipe'):
        check(raw[key], key)
    assert isinstance(renderer, PlainRecord)
    layer = G.state['_modules']['decoder'].state['_modules']['net'].state['_modules']['0']
    assert isinstance(layer, PersistentRecord) and layer.class_name == 'FullyConnectedLayer'
    assert layer.state['weight_gain'] == networks['G_ema'].decoder.net[0].weight_gain


def test_bad_data_is_refused_before_anything_is_written(networks, tmp_path):
    path = tmp_path / 'x.pkl'
    with pytest.raises(ValueError, match='augment_pipe'):
        save_network_pkl(path, {k: v for k, v in networks.items() if k != 'augment_pipe'})
    with pytest.raises(ValueError, match='progress'):
        save_network_pkl(path, {**networks, 'progress': {'when': object()}})
    with pytest.raises(ValueError, match='G_ema'):
        save_network_pkl(path, {**networks, 'G_ema': 'G'})
    assert list(tmp_path.iterdir()) == []


def test_extra_plain_entries_follow_the_official_keys(networks, tmp_path):
    save_network_pkl(tmp_path / 'x.pkl', {**networks, 'progress': {'cur_nimg': 4000}})
    raw = safe_load(tmp_path / 'x.pkl')
    assert list(raw)[-1] == 'progress' and raw['progress'] == {'cur_nimg': 4000}


def test_foreign_modules_are_refused(networks, tmp_path):
    D = copy.deepcopy(networks['D'])
    D.head = torch.nn.Identity()
    with pytest.raises(pickle.PicklingError, match='Identity'):
        save_network_pkl(tmp_path / 'x.pkl', {**networks, 'D': D})
    assert not (tmp_path / 'x.pkl').exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# the official loader, simulated


STAND_INS = {
    'torch_utils/__init__.py': '',
    'torch_utils/persistence.py': '''
        """Stand-in for the official module: exec the embedded source in a fresh module (once per
        source string), take the class by name, re-wrap it, __new__ + __setstate__."""
        import importlib.abc
        import sys
        import types
        import uuid

        SOURCES = []
        _modules = {}


        class _NoPackage(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] == 'eg3d_runtime':
                    raise ImportError(f'the embedded source imports {name}')


        def _module_for(source):
            if source not in _modules:
                module = types.ModuleType('_imported_module_' + uuid.uuid4().hex)
                sys.modules[module.__name__] = module
                hidden = {k: sys.modules.pop(k) for k in list(sys.modules)
                          if k.split('.')[0] == 'eg3d_runtime'}
                blocker = _NoPackage()
                sys.meta_path.insert(0, blocker)
                try:
                    exec(source, module.__dict__)
                finally:
                    sys.meta_path.remove(blocker)
                    sys.modules.update(hidden)
                SOURCES.append(source)
                _modules[source] = module
            return _modules[source]


        def _reconstruct_persistent_obj(meta):
            assert meta['type'] == 'class' and meta['version'] == 6
            cls = _module_for(meta['module_src']).__dict__[meta['class_name']]
            wrapped = type(cls.__name__, (cls,), {})
            obj = wrapped.__new__(wrapped)
            obj.__setstate__(meta['state'])
            return obj
    ''',
    'dnnlib/__init__.py': 'from .util import EasyDict\n',
    'dnnlib/util.py': '''
        class EasyDict(dict):
            def __getattr__(self, name):
                try:
                    return self[name]
                except KeyError:
                    raise AttributeError(name)

            def __setattr__(self, name, value):
                self[name] = value
    ''',
    'training/__init__.py': '',
    'training/triplane.py': '''
        from eg3d_runtime.networks import decoder


        class OSGDecoder(decoder.OSGDecoder):
            def forward(self, sampled_features, ray_directions):
                assert self.hidden_dim == 64
                return super().forward(sampled_features, ray_directions)
    ''',
    'training/volumetric_rendering/__init__.py': '',
    'training/volumetric_rendering/renderer.py': '''
        """The official signatures and the attributes the official class uses."""
        from eg3d_runtime.rendering import renderer
        from training.volumetric_rendering.ray_marcher import MipRayMarcher2


        class ImportanceRenderer(renderer.ImportanceRenderer):
            def forward(self, planes, decoder, ray_origins, ray_directions, rendering_options):
                self.plane_axes = self.plane_axes.to(ray_origins.device)
                assert self.plane_axes.shape == (3, 3, 3)
                assert isinstance(self.ray_marcher, MipRayMarcher2)
                return super().forward(planes, decoder, ray_origins, ray_directions,
                                       rendering_options)

            def run_model(self, planes, decoder, sample_coordinates, sample_directions,
                          options):
                return super().run_model(planes, decoder, sample_coordinates,
                                         sample_directions, options)
    ''',
    'training/volumetric_rendering/ray_sampler.py': '''
        from eg3d_runtime.rendering import rays


        class RaySampler(rays.RaySampler):
            def forward(self, cam2world_matrix, intrinsics, resolution):
                assert (self.ray_origins_h, self.ray_directions, self.depths, self.image_coords,
                        self.rendering_options) == (None,) * 5
                return super().forward(cam2world_matrix, intrinsics, resolution)
    ''',
    'training/volumetric_rendering/ray_marcher.py': '''
        import torch


        class MipRayMarcher2(torch.nn.Module):
            """Our renderer composites by itself; the official one calls this child."""
    ''',
}

OFFICIAL_SCRIPT = '''
import pickle
import sys

import numpy as np
import torch

pkl, inputs, out = sys.argv[1:]
with open(pkl, 'rb') as f:
    data = pickle.load(f)
from torch_utils import persistence
import dnnlib
G, D = data['G_ema'], data['D']
assert len(persistence.SOURCES) == 1
assert type(G).__bases__[0].__module__.startswith('_imported_module_')  # not eg3d_runtime
assert type(data['augment_pipe']).__name__ == 'AugmentPipe'
assert isinstance(G._init_kwargs['mapping_kwargs'], dnnlib.EasyDict)
assert type(G.renderer).__module__ == 'training.volumetric_rendering.renderer'
z, c = (torch.from_numpy(a) for a in np.load(inputs).values())
torch.manual_seed(7)
with torch.no_grad():
    result = G(z, c, neural_rendering_resolution=%d, noise_mode='const')
    result['logits'] = D(result, c)
np.savez(out, **{k: v.numpy() for k, v in result.items()})
with open(out + '.src', 'w') as f:
    f.write(persistence.SOURCES[0])
''' % NRR


def _write_stand_ins(root):
    for name, text in STAND_INS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def test_official_loader_runs_the_embedded_source(snapshot, tmp_path):
    _write_stand_ins(tmp_path / 'official')
    z, c = _inputs()
    np.savez(tmp_path / 'inputs.npz', z=z.numpy(), c=c.numpy())
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path / 'official'), str(REPO)])}
    proc = subprocess.run([sys.executable, '-c', OFFICIAL_SCRIPT, str(snapshot),
                           str(tmp_path / 'inputs.npz'), str(tmp_path / 'out.npz')],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    embedded = (tmp_path / 'out.npz.src').read_text()
    assert embedded == module_source.bundle_source()
    assert module_source.imported_roots(embedded) <= {'torch', 'numpy'} | sys.stdlib_module_names

    ours = load_network_pkl(snapshot)
    expected = _outputs(ours['G_ema'], ours['D'], z, c, faithful=True)
    official = np.load(tmp_path / 'out.npz')
    assert set(official.files) == set(expected)
    for key, value in expected.items():
        assert np.abs(official[key] - value.numpy()).max() <= 1e-6 * max(1, value.abs().max()), key


# ------------------------------------------------------------------------------------------------
# atomic replacement


def test_failed_write_keeps_the_previous_snapshot(networks, snapshot, tmp_path, monkeypatch):
    path = tmp_path / snapshot.name
    path.write_bytes(snapshot.read_bytes())
    calls = []

    def failing(self, obj):
        calls.append(obj)
        if len(calls) == 500:
            raise OSError('disk full')
        return pickle._Pickler.memoize(self, obj)

    monkeypatch.setattr(pickle_writer._SnapshotPickler, 'memoize', failing)
    with pytest.raises(OSError, match='disk full'):
        save_network_pkl(path, networks)
    assert path.read_bytes() == snapshot.read_bytes()
    assert list(tmp_path.iterdir()) == [path]


KILLED_WRITER = '''
import sys
import time

from eg3d_runtime import save_network_pkl
from eg3d_runtime.pickles import writer as pickle_writer
sys.path.insert(0, sys.argv[2])
from test_pickle_writer import _tiny_networks

G, D, pipe = _tiny_networks()
original, calls = pickle_writer._SnapshotPickler.memoize, []


def slow(self, obj):
    calls.append(obj)
    if len(calls) == 4000:  # about half of this snapshot
        print('writing', flush=True)
        time.sleep(120)
    return original(self, obj)


pickle_writer._SnapshotPickler.memoize = slow
save_network_pkl(sys.argv[1], {'training_set_kwargs': {}, 'G': G, 'D': D, 'G_ema': G,
                                'augment_pipe': pipe})
'''


def test_killed_writer_keeps_the_previous_snapshot(snapshot, tmp_path):
    path = tmp_path / snapshot.name
    path.write_bytes(snapshot.read_bytes())
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    proc = subprocess.Popen([sys.executable, '-c', KILLED_WRITER, str(path),
                             str(REPO / 'tests')], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'writing'
        temps = [p for p in tmp_path.iterdir() if p != path]
        assert len(temps) == 1 and temps[0].stat().st_size > 0
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == snapshot.read_bytes()
    assert [p.name for p in tmp_path.glob('*.pkl')] == [path.name]
    assert all(p.name.startswith('.') and p.suffix == '.tmp' for p in tmp_path.iterdir()
               if p != path)
    load_network_pkl(path)


# ------------------------------------------------------------------------------------------------
# the official fixture, re-saved


@pytest.fixture(scope='module')
def resaved_fixture(fixture_networks, tmp_path_factory):
    path = tmp_path_factory.mktemp('resaved') / 'resaved.pkl'
    save_network_pkl(path, fixture_networks)
    return load_network_pkl(path)


def test_resaved_fixture_matches_the_reference(fixture_networks, resaved_fixture, reference):
    back = resaved_fixture
    assert back['training_set_kwargs'] == fixture_networks['training_set_kwargs']
    for key in ('G', 'D', 'G_ema'):
        ours, theirs = fixture_networks[key].state_dict(), back[key].state_dict()
        assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    ref, meta = reference
    G = back['G_ema']
    assert G.neural_rendering_resolution == fixture_networks['G_ema'].neural_rendering_resolution
    case = meta['cases'][0]
    ws = G.mapping(torch.from_numpy(ref['z0']), torch.from_numpy(ref['cond_c0']),
                   truncation_psi=case['psi'], truncation_cutoff=case['truncation_cutoff'])
    assert relative_rms(ws, ref['ws0']) < 1e-4
    points = torch.from_numpy(ref['probe_points'])
    with torch.no_grad():
        sigma = G.sample_mixed(points, torch.zeros_like(points), torch.from_numpy(ref['probe_ws']),
                               noise_mode='const', faithful=True)['sigma']
    assert relative_rms(sigma, ref['probe_sigma']) < 1e-3


@pytest.mark.slow
def test_resaved_fixture_renders_the_reference_images(resaved_fixture, reference):
    ref, meta = reference
    with torch.no_grad():
        out = resaved_fixture['G_ema'].synthesis(
            torch.from_numpy(ref['ws0']), torch.from_numpy(ref['c0']), noise_mode='const',
            neural_rendering_resolution=meta['cases'][0]['neural_rendering_resolution'],
            deterministic=True, faithful=True)
    for key in ('image', 'image_raw', 'image_depth'):
        assert relative_rms(out[key], ref[f'{key}0']) < 1e-3, key
