"""Tests of the restricted unpickler: the reference fixture, round trips of every supported
encoding, malicious pickles (nothing may run) and corrupt files (one clean error line)."""
import collections
import hashlib
import io
import os
import pickle
import pickletools
import sys
import types
import warnings

import numpy as np
import pytest
import torch

from eg3d_runtime.pickles.safe_unpickle import (EasyDict, PersistentRecord, PickleLoadError,
                                                PlainRecord, module_state_dict, safe_load)

from conftest import FIXTURE_PKL

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


@pytest.fixture(scope='module')
def snapshot(fixture_pkl):
    return safe_load(fixture_pkl)


def _child(record, dotted):
    for name in dotted.split('.'):
        record = record.state['_modules'][name]
    return record


# ------------------------------------------------------------------------------------------------
# The reference fixture


def test_fixture_top_level(snapshot):
    assert list(snapshot) == ['G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs']
    assert snapshot['augment_pipe'] is None
    assert snapshot['training_set_kwargs']['class_name'] == 'training.dataset.ImageFolderDataset'


def test_fixture_generator_record(snapshot):
    G = snapshot['G_ema']
    assert isinstance(G, PersistentRecord) and G.class_name == 'TriPlaneGenerator'
    assert G.state['neural_rendering_resolution'] == 64
    assert (G.state['rendering_kwargs']['superresolution_module']
            == 'training.superresolution.SuperresolutionHybrid8XDC')
    assert len(G.module_src_digest) == 64 and int(G.module_src_digest, 16) >= 0
    assert G.init_args == ()
    kwargs = G.init_kwargs
    assert type(kwargs) is dict and type(kwargs['mapping_kwargs']) is dict
    assert kwargs['mapping_kwargs'] == {'num_layers': 2} and kwargs['c_dim'] == 25
    assert isinstance(G.state['_init_kwargs']['sr_kwargs'], EasyDict)  # the raw state keeps it
    assert G.state['_init_kwargs']['sr_kwargs'].channel_max == 32
    assert _child(G, 'superresolution').class_name == 'SuperresolutionHybrid8XDC'


def test_fixture_plain_records(snapshot):
    G = snapshot['G_ema']
    decoder = _child(G, 'decoder')
    assert isinstance(decoder, PlainRecord) and decoder.qualname == 'training.triplane.OSGDecoder'
    assert decoder.state['hidden_dim'] == 64
    assert _child(G, 'decoder.net').qualname == 'torch.nn.modules.container.Sequential'
    softplus = _child(G, 'decoder.net.1')
    assert softplus.qualname == 'torch.nn.modules.activation.Softplus'
    assert (softplus.state['beta'], softplus.state['threshold']) == (1, 20)
    assert _child(G, 'renderer.ray_marcher').qualname == \
        'training.volumetric_rendering.ray_marcher.MipRayMarcher2'
    assert _child(G, 'ray_sampler').state['ray_origins_h'] is None
    assert _child(G, 'renderer').state['plane_axes'].shape == (3, 3, 3)


def test_fixture_scalars_are_python_floats(snapshot):
    fc = _child(snapshot['G_ema'], 'decoder.net.0')
    assert fc.class_name == 'FullyConnectedLayer'
    assert type(fc.state['weight_gain']) is float
    assert fc.state['weight_gain'] == pytest.approx(32 ** -0.5)


def test_fixture_generator_state_dict(snapshot):
    G = snapshot['G_ema']
    sd = module_state_dict(G)
    first = 'dataset_label_std' if 'dataset_label_std' in G.state['_buffers'] else \
        'backbone.synthesis.b4.const'
    assert next(iter(sd)) == first == 'backbone.synthesis.b4.const'  # this fixture has no label std
    assert len(sd) == 176
    assert sd['backbone.mapping.w_avg'].shape == (512,)
    assert sd['decoder.net.0.weight'].shape == (64, 32)
    assert sd['decoder.net.2.weight'].shape == (33, 64)
    assert sd['superresolution.block0.conv0.weight'].shape == (256, 32, 3, 3)
    prefix = 'backbone.synthesis.b8.conv0.'
    assert [k[len(prefix):] for k in sd if k.startswith(prefix)] == [
        'weight', 'noise_strength', 'bias', 'resample_filter', 'noise_const', 'affine.weight',
        'affine.bias']
    keys = list(sd)  # children in insertion order: all of synthesis, then mapping, SR, decoder
    assert keys.index('backbone.synthesis.b256.torgb.affine.bias') + 1 == \
        keys.index('backbone.mapping.w_avg')
    assert keys[-4:] == ['decoder.net.0.weight', 'decoder.net.0.bias', 'decoder.net.2.weight',
                         'decoder.net.2.bias']
    parameters = sum(t.numel() for k, t in sd.items() if 'resample_filter' not in k
                     and 'noise_const' not in k and k != 'backbone.mapping.w_avg')
    assert parameters == 2782672  # ffhq-micro-ref.json
    for tensor in sd.values():
        assert type(tensor) is torch.Tensor and tensor.dtype == torch.float32
        assert not tensor.requires_grad and tensor.device.type == 'cpu'
        assert torch.isfinite(tensor).all()


def test_fixture_discriminator_state_dict(snapshot):
    D = snapshot['D']
    assert isinstance(D, PersistentRecord) and D.class_name == 'DualDiscriminator'
    sd = module_state_dict(D)
    assert next(iter(sd)) == 'resample_filter'
    assert sd['b512.fromrgb.weight'].ndim == 4
    assert len(sd) == 92


class _ReferenceUnpickler(pickle.Unpickler):
    """Decodes the trusted fixture with torch's own tensor and storage code, for comparison."""

    class Plain:
        def __setstate__(self, state):
            self.state = state

    def find_class(self, module, name):
        if module == 'torch_utils.persistence':
            return lambda meta: types.SimpleNamespace(state=meta['state'])
        if module.startswith(('training.', 'torch.nn.modules.')):
            return self.Plain
        if module == 'dnnlib.util':
            return dict
        if (module, name) == ('torch.storage', '_load_from_bytes'):
            return lambda data: torch.load(io.BytesIO(data), weights_only=True)
        return super().find_class(module, name)


def _tensors_in_order(obj, out):
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, dict):
        for value in obj.values():
            _tensors_in_order(value, out)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _tensors_in_order(value, out)
    elif hasattr(obj, 'state'):
        _tensors_in_order(obj.state, out)
    return out


def test_fixture_tensors_match_torch_decoding(snapshot, fixture_pkl):
    with open(fixture_pkl, 'rb') as f, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        reference = _tensors_in_order(_ReferenceUnpickler(f).load()['G_ema'], [])
    ours = _tensors_in_order(snapshot['G_ema'], [])
    assert len(ours) == len(reference) > 170
    for a, b in zip(ours, reference):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert torch.equal(a, b.detach())


# ------------------------------------------------------------------------------------------------
# Round trips with the real pickler


@pytest.fixture
def official(monkeypatch):
    """Stand-ins registered under the official module names, so `pickle.dumps` writes exactly
    the globals an EG3D snapshot contains."""
    def register(module_name, **attributes):
        module = types.ModuleType(module_name)
        for name, value in attributes.items():
            value.__module__, value.__qualname__ = module_name, name
            setattr(module, name, value)
        monkeypatch.setitem(sys.modules, module_name, module)

    class OfficialEasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    class OSGDecoder:
        pass

    def reconstruct(meta):
        raise AssertionError('only pickled here, never called')

    class Persistent:
        def __init__(self, class_name, state, module_src='# module source'):
            self.meta = dict(type='class', version=6, module_src=module_src,
                             class_name=class_name, state=state)

        def __reduce__(self):
            return reconstruct, (self.meta,)

    register('dnnlib')
    register('dnnlib.util', EasyDict=OfficialEasyDict)
    register('torch_utils')
    register('torch_utils.persistence', _reconstruct_persistent_obj=reconstruct)
    register('training')
    register('training.triplane', OSGDecoder=OSGDecoder)
    return types.SimpleNamespace(EasyDict=OfficialEasyDict, OSGDecoder=OSGDecoder,
                                 Persistent=Persistent)


def _module_state(parameters=(), buffers=(), modules=(), non_persistent=(), **attributes):
    return dict(training=False, _parameters=dict(parameters), _buffers=dict(buffers),
                _non_persistent_buffers_set=set(non_persistent),
                _forward_hooks=collections.OrderedDict(), _modules=dict(modules), **attributes)


def _mini_generator(official):
    fc = official.Persistent('FullyConnectedLayer', _module_state(
        parameters={'weight': torch.nn.Parameter(torch.randn(4, 3)), 'bias': None},
        weight_gain=np.float64(0.5), activation='linear'))
    decoder = official.OSGDecoder()
    decoder.__dict__.update(_module_state(modules={'fc': fc}, hidden_dim=4))
    kwargs = official.EasyDict(mapping_kwargs=official.EasyDict(num_layers=2), c_dim=25)
    return official.Persistent('TriPlaneGenerator', _module_state(
        parameters={'p': torch.nn.Parameter(torch.arange(3.0))},
        buffers={'b': torch.ones(2), 'scratch': torch.zeros(1), 'gone': None},
        non_persistent={'scratch'},
        modules=collections.OrderedDict(decoder=decoder, missing=None),
        neural_rendering_resolution=64, _init_args=(), _init_kwargs=kwargs))


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_round_trip_of_an_official_style_graph(official, protocol):
    G = _mini_generator(official)
    blob = pickle.dumps({'G_ema': G, 'augment_pipe': None}, protocol=protocol)
    loaded = safe_load(io.BytesIO(blob))['G_ema']
    assert isinstance(loaded, PersistentRecord) and loaded.class_name == 'TriPlaneGenerator'
    assert loaded.module_src_digest == hashlib.sha256(b'# module source').hexdigest()
    assert loaded.init_kwargs == {'mapping_kwargs': {'num_layers': 2}, 'c_dim': 25}
    assert loaded.state['_init_kwargs'].mapping_kwargs.num_layers == 2
    assert isinstance(loaded.state['_forward_hooks'], collections.OrderedDict)
    assert loaded.state['_non_persistent_buffers_set'] == {'scratch'}
    decoder = _child(loaded, 'decoder')
    assert decoder.qualname == 'training.triplane.OSGDecoder' and decoder.state['hidden_dim'] == 4
    fc = _child(loaded, 'decoder.fc')
    assert type(fc.state['weight_gain']) is float and fc.state['weight_gain'] == 0.5
    sd = module_state_dict(loaded)
    assert list(sd) == ['p', 'b', 'decoder.fc.weight']
    state = G.meta['state']
    fc_state = state['_modules']['decoder'].__dict__['_modules']['fc'].meta['state']
    assert torch.equal(sd['p'], state['_parameters']['p'].detach())
    assert torch.equal(sd['decoder.fc.weight'], fc_state['_parameters']['weight'].detach())
    assert type(sd['p']) is torch.Tensor and not sd['p'].requires_grad


def _tensor_zoo():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        'float32': torch.randn(2, 3), 'float16': torch.randn(5).half(),
        'bfloat16': torch.randn(5).bfloat16(), 'float64': torch.randn(3).double(),
        'int64': torch.tensor([-(2 ** 40), 7]), 'int32': torch.tensor([-3, 4], dtype=torch.int32),
        'int16': torch.tensor([-3, 4], dtype=torch.int16),
        'int8': torch.tensor([-3, 4], dtype=torch.int8),
        'uint8': torch.tensor([0, 255], dtype=torch.uint8), 'bool': torch.tensor([True, False]),
        'scalar': torch.tensor(2.5), 'empty': torch.empty(0, 3),
        'transposed': base.t(), 'offset_view': base[1:, 2:],
        'parameter': torch.nn.Parameter(torch.randn(2, 2)),
    }


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_round_trip_tensors(protocol):
    original = _tensor_zoo()
    loaded = safe_load(io.BytesIO(pickle.dumps(original, protocol=protocol)))
    assert list(loaded) == list(original)
    for name, tensor in original.items():
        got = loaded[name]
        assert type(got) is torch.Tensor, name
        assert got.dtype == tensor.dtype and got.shape == tensor.shape, name
        assert got.stride() == tensor.stride() and not got.requires_grad, name
        assert torch.equal(got, tensor.detach()), name
    loaded['float32'].add_(1)  # decoded tensors own writable memory


def test_tensor_with_python_attributes_uses_rebuild_from_type():
    tensor = torch.arange(4.0)
    tensor.note = 'extra state'
    blob = pickle.dumps(tensor, protocol=4)
    assert b'_rebuild_from_type_v2' in blob
    got = safe_load(io.BytesIO(blob))
    assert type(got) is torch.Tensor and torch.equal(got, torch.arange(4.0))


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_round_trip_numpy_and_containers(protocol):
    original = {
        'arrays': [np.arange(6.0).reshape(2, 3), np.asfortranarray(np.arange(6).reshape(2, 3)),
                   np.array([1, -2], dtype='>i4'), np.zeros((0, 2), np.float32),
                   np.array(3.5, np.float16), np.array([True, False])],
        'in_tuple': (np.ones(2, np.uint8),),
        'scalars': [np.float64(0.25), np.float32(1.5), np.int64(-7), np.bool_(True)],
        'set': {1, 2}, 'frozenset': frozenset({'a'}), 'bytes': b'\x00\xffraw',
        'ordered': collections.OrderedDict(b=1, a=2),
    }
    loaded = safe_load(io.BytesIO(pickle.dumps(original, protocol=protocol)))
    for got, want in zip(loaded['arrays'] + list(loaded['in_tuple']),
                         original['arrays'] + list(original['in_tuple'])):
        assert type(got) is np.ndarray and got.dtype == want.dtype.newbyteorder('=')
        assert got.shape == want.shape and np.array_equal(got, want)
    assert loaded['arrays'][1].flags.f_contiguous
    assert loaded['scalars'] == [0.25, 1.5, -7, True]
    assert [type(v) for v in loaded['scalars']] == [float, float, int, bool]
    assert loaded['set'] == {1, 2} and loaded['frozenset'] == frozenset({'a'})
    assert loaded['bytes'] == b'\x00\xffraw'
    assert type(loaded['ordered']) is collections.OrderedDict
    assert list(loaded['ordered']) == ['b', 'a']


@pytest.mark.parametrize('module', ['numpy._core.multiarray', 'numpy.core.multiarray'])
def test_numpy_scalar_under_both_module_names(module):
    blob = pickle.dumps(np.float64(-1.75), protocol=2)  # protocol 2: module names are plain text
    assert b'cnumpy._core.multiarray\nscalar\n' in blob
    blob = blob.replace(b'numpy._core.multiarray\nscalar', module.encode() + b'\nscalar')
    got = safe_load(io.BytesIO(blob))
    assert type(got) is float and got == -1.75


def test_non_seekable_stream():
    class Pipe:  # only what a pipe offers
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, n=-1):
            return self._data.read(n)

        def readline(self):
            return self._data.readline()

        def seekable(self):
            return False

    blob = pickle.dumps({'t': torch.arange(3.0), 'x': [1, 'a']}, protocol=2)
    got = safe_load(Pipe(blob))
    assert torch.equal(got['t'], torch.arange(3.0)) and got['x'] == [1, 'a']
    with pytest.raises(PickleLoadError, match=r"^<stream>: refuses to load global 'posix.system'$"):
        safe_load(Pipe(pickle.dumps(_Evil('true'))))


# ------------------------------------------------------------------------------------------------
# Malicious pickles: refused or inert, never executed


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _call_global(module, name, *args):
    """A protocol 3 pickle of `module.name(*args)`, written opcode by opcode."""
    body = pickle.dumps(args, protocol=3)[2:-1]  # without PROTO and STOP
    return b'\x80\x03c' + f'{module}\n{name}\n'.encode() + body + b'R.'


def test_persistent_source_is_never_executed(tmp_path, official):
    target = tmp_path / 'pwned'
    source = f"import pathlib; pathlib.Path(r'{target}').write_text('x')"
    blob = pickle.dumps(official.Persistent('TriPlaneGenerator', _module_state(), source))
    path = tmp_path / 'persistent.pkl'
    path.write_bytes(blob)
    record = safe_load(path)
    assert isinstance(record, PersistentRecord) and record.class_name == 'TriPlaneGenerator'
    assert record.module_src_digest == hashlib.sha256(source.encode()).hexdigest()
    assert not target.exists()


def test_os_system_is_refused(tmp_path):
    target = tmp_path / 'pwned2'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(pickle.dumps(_Evil(f'touch {target}')))
    with pytest.raises(PickleLoadError) as info:
        safe_load(path)
    assert str(info.value) == f"{path}: refuses to load global 'posix.system'"
    assert not target.exists()


@pytest.mark.parametrize('module, name', [
    ('builtins', 'eval'), ('builtins', 'exec'), ('__builtin__', 'eval'), ('builtins', 'getattr'),
    ('subprocess', 'Popen'), ('torch', 'load'), ('torch.serialization', 'load'),
    ('numpy', 'load'), ('dnnlib.util', 'call_func_by_name'),
    ('training.triplane', 'TriPlaneGenerator'),
])
def test_dangerous_globals_are_refused(tmp_path, module, name):
    target = tmp_path / 'pwned3'
    path = tmp_path / 'evil.pkl'
    path.write_bytes(_call_global(module, name, f"open(r'{target}', 'w').close()"))
    with pytest.raises(PickleLoadError) as info:
        safe_load(path)
    assert str(info.value) == f"{path}: refuses to load global '{module}.{name}'"
    assert not target.exists()


def _inner_streams(blob):
    return [arg for op, arg, _ in pickletools.genops(blob) if op.name == 'BINBYTES']


def _replace_inner_stream(blob, old, new):
    """Swap one storage stream inside a protocol 3 pickle (no frames, 4-byte lengths)."""
    def encode(data):
        return b'B' + len(data).to_bytes(4, 'little') + data
    assert blob.count(encode(old)) == 1
    return blob.replace(encode(old), encode(new))


def _snapshot_like_blob():
    state = {'weight': torch.randn(8, 8), 'bias': torch.zeros(8)}
    return pickle.dumps({'G_ema': state, 'training_set_kwargs': {'resolution': 512}}, protocol=3)


def test_forbidden_global_inside_a_tensor_storage_is_refused(tmp_path):
    blob = _snapshot_like_blob()
    inner = _inner_streams(blob)[1]
    evil = inner.replace(b'ctorch\nFloatStorage\n', b'cposix\nsystem\n')
    path = tmp_path / 'nested.pkl'
    path.write_bytes(_replace_inner_stream(blob, inner, evil))
    with pytest.raises(PickleLoadError) as info:
        safe_load(path)
    assert str(info.value) == f"{path}: refuses to load global 'posix.system'"


def test_outer_persistent_ids_are_refused():
    class WithPersistentIds(pickle.Pickler):
        def persistent_id(self, obj):
            return 'x' if obj == 'secret' else None

    buffer = io.BytesIO()
    WithPersistentIds(buffer, protocol=4).dump({'a': 'secret'})
    buffer.seek(0)
    with pytest.raises(PickleLoadError, match=r'^<stream>: refuses persistent ids'):
        safe_load(buffer)


def test_memory_bombs_are_cheap():
    # A huge memo index makes the C unpickler allocate and zero a table of that many slots;
    # BYTEARRAY8 would allocate and zero the declared size before reading anything.
    assert safe_load(io.BytesIO(b'\x80\x04Nr\xff\xff\xff\x7f.')) is None
    with pytest.raises(PickleLoadError, match=r'^<stream>: file is truncated$'):
        safe_load(io.BytesIO(b'\x80\x05\x96' + (2 ** 40).to_bytes(8, 'little') + b'.'))


def test_build_only_on_stand_ins():
    # BUILD would otherwise set attributes of tensors, dicts or records
    with pytest.raises(PickleLoadError, match=r"^<stream>: refuses to set the state of a dict$"):
        safe_load(io.BytesIO(b'\x80\x04}}b.'))


def _storage_reduce(storage, offset, size, stride):
    class Tensorish:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, False,
                                                      collections.OrderedDict())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return pickle.dumps(Tensorish(), protocol=4)


def _malformed_blobs():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        storage = torch.arange(6.0).storage()
    blob = _snapshot_like_blob()
    inner = _inner_streams(blob)[0]
    return {
        'tensor_past_storage': (_storage_reduce(storage, 0, (10,), (1,)), 'malformed tensor'),
        'negative_stride': (_storage_reduce(storage, 0, (2,), (-1,)), 'malformed tensor'),
        'offset_past_storage': (_storage_reduce(storage, 5, (2,), (1,)), 'malformed tensor'),
        'short_storage_data': (_replace_inner_stream(blob, inner, inner[:-4]),
                               'malformed tensor storage'),
        'storage_not_bytes': (_call_global('torch.storage', '_load_from_bytes', 'text'),
                              'malformed tensor storage'),
        'bad_persistent_version': (_call_global('torch_utils.persistence',
                                                '_reconstruct_persistent_obj',
                                                dict(type='class', version=5, module_src='',
                                                     class_name='X', state={})),
                                   'unsupported persistent object'),
        'object_dtype': (_call_global('numpy', 'dtype', 'O8', False, True),
                         'unsupported numpy dtype'),
        'codecs_other_encoding': (_call_global('_codecs', 'encode', 'x', 'rot13'),
                                  "refuses _codecs.encode"),
        'plain_class_with_args': (_call_global('training.triplane', 'OSGDecoder', 1),
                                  'training.triplane.OSGDecoder: unexpected constructor arguments'),
    }


@pytest.mark.parametrize('case', sorted(_malformed_blobs()))
def test_malformed_content_is_one_error_line(tmp_path, case):
    blob, expected = _malformed_blobs()[case]
    path = tmp_path / f'{case}.pkl'
    path.write_bytes(blob)
    with pytest.raises(PickleLoadError) as info:
        safe_load(path)
    message = str(info.value)
    assert message.startswith(f'{path}: {expected}') and '\n' not in message


# ------------------------------------------------------------------------------------------------
# Files that are not (complete) pickles


def _fixture_half():
    return FIXTURE_PKL.read_bytes()[:FIXTURE_PKL.stat().st_size // 2]


@pytest.mark.parametrize('content, expected', [
    (b'', 'file is empty'),
    (b'hello, this is a text file\nwith two lines\n', 'not a pickle file (text)'),
    (b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', 'not a pickle file (PNG image)'),
    (b'PK\x03\x04\x14\x00\x00\x00', 'not a pickle file (zip archive'),
    (b'\x80\x09', 'not a pickle file (unknown pickle protocol 9)'),
    (b'\x80\x04\x95', 'file is truncated'),
    (_fixture_half, 'file is truncated'),
])
def test_corrupt_files_give_one_line(tmp_path, content, expected):
    path = tmp_path / 'broken.pkl'
    path.write_bytes(content() if callable(content) else content)
    with pytest.raises(PickleLoadError) as info:
        safe_load(str(path))
    message = str(info.value)
    assert message.startswith(f'{path}: {expected}') and '\n' not in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(PickleLoadError, match=r'^.*nope\.pkl: no such file$'):
        safe_load(tmp_path / 'nope.pkl')
    with pytest.raises(PickleLoadError, match=r': cannot open \('):
        safe_load(tmp_path)


def test_file_object_name_is_used(tmp_path):
    path = tmp_path / 'named.pkl'
    path.write_bytes(b'')
    with open(path, 'rb') as f, pytest.raises(PickleLoadError) as info:
        safe_load(f)
    assert str(info.value) == f'{path}: file is empty'
    path.write_bytes(b'\x80\x04\xff\xfe')
    with open(path, encoding='utf-8') as f, pytest.raises(PickleLoadError) as info:
        safe_load(f)
    assert str(info.value).startswith(f'{path}: cannot read (UnicodeDecodeError')
    with pytest.raises(TypeError):
        safe_load(b'\x80\x04N.')


# ------------------------------------------------------------------------------------------------
# module_state_dict on hand-made records


def _record(parameters=(), buffers=(), modules=(), non_persistent=()):
    return PersistentRecord('M', _module_state(parameters, buffers, modules, non_persistent), '')


def test_state_dict_order_and_skips():
    t = torch.zeros(1)
    child = PlainRecord('torch.nn.modules.container.Sequential',
                        _module_state(parameters={'w': t}))
    root = _record(parameters={'a': t, 'none': None}, buffers={'buf': t, 'tmp': t, 'nb': None},
                   modules={'second': _record(buffers={'x': t}), 'first': child, 'gone': None},
                   non_persistent={'tmp'})
    assert list(module_state_dict(root)) == ['a', 'buf', 'second.x', 'first.w']


def test_state_dict_rejects_cycles_and_non_tensors():
    loop = _record()
    loop.state['_modules']['self'] = loop
    with pytest.raises(ValueError, match='cycle'):
        module_state_dict(loop)
    with pytest.raises(ValueError, match='not a tensor'):
        module_state_dict(_record(parameters={'w': [1.0]}))
    with pytest.raises(ValueError, match='not a module record'):
        module_state_dict(_record(modules={'child': {'_parameters': {}}}))
