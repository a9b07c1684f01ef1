"""The safe loader on PanoHead snapshots: the structure PanoHead's training writes (G, D,
G_ema), told from EG3D by the recorded rendering options, numpy 1.x and 2.x module paths,
and refused options."""
import copy
import io
import pickletools

import pytest
import torch

from eg3d_runtime import load_network_pkl
from eg3d_runtime.networks.discriminator import MaskDualDiscriminatorV2
from eg3d_runtime.networks.panohead import PANOHEAD_OPTIONS, PanoHeadGenerator, is_panohead
from eg3d_runtime.networks.triplane import TriPlaneGenerator
from eg3d_runtime.pickles.loader import rebuild_network
from eg3d_runtime.pickles.safe_unpickle import (PersistentRecord, PlainRecord,
                                                module_state_dict, safe_load)


@pytest.fixture(scope='module')
def records(panohead_pkl):
    return safe_load(panohead_pkl)


def _child(record, name):
    return record.state['_modules'][name]


def test_snapshot_networks(panohead_networks, panohead_reference, records):
    _, meta = panohead_reference
    nets = panohead_networks
    assert set(nets) == {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
    assert nets['augment_pipe'] is None
    assert isinstance(nets['G'], PanoHeadGenerator) and isinstance(nets['G_ema'], PanoHeadGenerator)
    assert isinstance(nets['D'], MaskDualDiscriminatorV2)
    G = nets['G_ema']
    assert G.rendering_kwargs == meta['G_kwargs']['rendering_kwargs']
    assert G.img_resolution == meta['common_kwargs']['img_resolution']
    depth = G.rendering_kwargs['triplane_depth']
    assert G.backbone.synthesis.img_channels == 96 * depth
    assert G.backbone.synthesis.img_resolution == G.rendering_kwargs['triplane_size']
    assert G.bcg_synthesis.img_resolution == G.superresolution.input_resolution
    assert G.t_mapping.num_ws == 1 and G.t_mapping.w_dim == 3
    assert G.decoder.activation == G.rendering_kwargs['decoder_activation']
    for key in ('G', 'D', 'G_ema'):         # each from its own record, every entry by name
        stored = module_state_dict(records[key])
        loaded = nets[key].state_dict()
        assert list(loaded) == list(stored)
        assert all(torch.equal(loaded[k], stored[k]) for k in stored), key


def test_discriminator_reads_image_raw_and_mask(panohead_networks):
    D = panohead_networks['D']
    res = D.img_resolution
    assert D.img_channels == 2 * 3 + D.seg_channels
    img = {'image': torch.randn(2, 3, res, res), 'image_raw': torch.randn(2, 3, 32, 32),
           'image_mask': torch.rand(2, 1, 32, 32)}
    with torch.no_grad():
        c = torch.randn(2, 25)
        logits = D(img, c)
        img['image_mask'] = img['image_mask'] * 0
        other = D(img, c)
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    assert not torch.equal(logits, other)


def test_record_structure(records):
    """PanoHead makes the decoder, renderer and ray marcher persistent; the ray sampler stays
    a plain class; nothing of the embedded source is run."""
    G = records['G_ema']
    assert isinstance(G, PersistentRecord) and G.class_name == 'TriPlaneGenerator'
    assert records['D'].class_name == 'MaskDualDiscriminatorV2'
    expected = {'renderer': 'ImportanceRenderer', 'decoder': 'OSGDecoder',
                'torgb': 'ToRGBLayer', 'bcg_synthesis': 'SynthesisNetwork',
                't_mapping': 'MappingNetwork', 'superresolution':
                G.init_kwargs['rendering_kwargs']['superresolution_module'].rsplit('.', 1)[1]}
    for name, cls in expected.items():
        child = _child(G, name)
        assert isinstance(child, PersistentRecord) and child.class_name == cls, name
    assert _child(_child(G, 'renderer'), 'ray_marcher').class_name == 'MipRayMarcher2'
    assert isinstance(_child(G, 'ray_sampler'), PlainRecord)
    assert is_panohead(G.init_kwargs['rendering_kwargs'])


def _rename_global_module(data, old, new):
    """The same pickle with the module name `old` of its globals written as `new` (as numpy
    1.x writes numpy._core paths); frames are rebuilt around the changed opcodes."""
    def short(text):
        return b'\x8c' + bytes([len(text)]) + text.encode()
    out, last = io.BytesIO(), 0
    for op, arg, pos in pickletools.genops(data):
        if op.name == 'FRAME':
            out.write(data[last:pos])
            payload = data[pos + 9:pos + 9 + arg].replace(short(old), short(new))
            out.write(b'\x95' + len(payload).to_bytes(8, 'little') + payload)
            last = pos + 9 + arg
    out.write(data[last:])
    return out.getvalue()


def test_numpy_1_and_2_module_paths(panohead_pkl, panohead_networks):
    data = panohead_pkl.read_bytes()
    assert b'numpy._core.multiarray' in data
    old = _rename_global_module(data, 'numpy._core.multiarray', 'numpy.core.multiarray')
    assert b'numpy._core.multiarray' not in old and b'numpy.core.multiarray' in old
    G = load_network_pkl(io.BytesIO(old), keys=('G_ema',))['G_ema']
    for a, b in zip(G.state_dict().values(), panohead_networks['G_ema'].state_dict().values()):
        assert torch.equal(a, b)
    assert G.decoder.net[0].weight_gain == panohead_networks['G_ema'].decoder.net[0].weight_gain


def test_family_comes_from_rendering_options(records):
    """The same record without PanoHead's options is an EG3D generator, which its state does
    not fit; the embedded source plays no part."""
    G = copy.deepcopy(records['G_ema'])
    for rk in (G.state['_init_kwargs']['rendering_kwargs'], G.state['rendering_kwargs']):
        for key in PANOHEAD_OPTIONS + ('triplane_size',):
            rk.pop(key, None)
    with pytest.raises(ValueError, match='TriPlaneGenerator state does not match'):
        rebuild_network(G)
    assert not is_panohead(rk) and is_panohead({'use_background': False})
    G.state['rendering_kwargs'] = records['G_ema'].state['rendering_kwargs']
    with pytest.raises(ValueError, match='of different families'):
        rebuild_network(G)


@pytest.mark.parametrize('key, value, message', [
    ('triplane_depth', 0, r"\['triplane_depth'\] must be an integer from 1 to 16, got 0"),
    ('triplane_size', 96, r"\['triplane_size'\] must be a power of two from 4 to 1024"),
    ('decoder_activation', 'tanh', r"\['decoder_activation'\] must be 'sigmoid' or 'lrelu'"),
    ('use_background', 1, r"\['use_background'\] must be True or False, got 1"),
    ('triplane_size', None, r"rendering_kwargs lacks 'triplane_size'"),
])
def test_bad_panohead_options_are_refused(records, key, value, message):
    G = copy.deepcopy(records['G_ema'])
    rk = G.state['_init_kwargs']['rendering_kwargs']
    if value is None:
        del rk[key]
    else:
        rk[key] = value
    with pytest.raises(ValueError, match=message):
        rebuild_network(G)


def test_eg3d_fixture_stays_eg3d(fixture_G):
    assert isinstance(fixture_G, TriPlaneGenerator)
    assert not isinstance(fixture_G, PanoHeadGenerator)
    assert not is_panohead(fixture_G.rendering_kwargs)
    assert fixture_G.decoder.activation == 'sigmoid'
