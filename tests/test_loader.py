"""load_network_pkl: what a snapshot gives back, and one clear line for every bad file."""
import pickle
import warnings

import pytest
import torch

from eg3d_runtime import PartialLoadWarning, PickleLoadError, load_generator, load_network_pkl
from eg3d_runtime.networks.discriminator import DualDiscriminator
from eg3d_runtime.networks.triplane import TriPlaneGenerator


def test_snapshot_parts(fixture_networks):
    nets = fixture_networks
    assert set(nets) == {'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}
    assert isinstance(nets['G_ema'], TriPlaneGenerator)
    assert isinstance(nets['G'], TriPlaneGenerator)
    assert isinstance(nets['D'], DualDiscriminator)
    assert nets['augment_pipe'] is None
    assert nets['training_set_kwargs']['resolution'] == 512


def test_generator_attributes(fixture_G):
    G = fixture_G
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution) == (512, 25, 512, 512)
    assert G.neural_rendering_resolution == 64
    assert G.rendering_kwargs['superresolution_module'].endswith('SuperresolutionHybrid8XDC')
    assert G.backbone.mapping.w_avg.shape == (512,)
    assert not G.training and not any(p.requires_grad for p in G.parameters())


def test_file_object_and_generator_only(fixture_pkl):
    with open(fixture_pkl, 'rb') as f:
        G = load_generator(f)
    assert isinstance(G, TriPlaneGenerator)


def _patched_fixture(tmp_path, fixture_pkl, old, new):
    data = fixture_pkl.read_bytes()
    assert len(old) == len(new) and old in data
    path = tmp_path / 'patched.pkl'
    path.write_bytes(data.replace(old, new))
    return path


def test_unrestorable_part_is_reported_and_G_ema_still_loads(tmp_path, fixture_pkl):
    path = _patched_fixture(tmp_path, fixture_pkl, b'DualDiscriminator', b'DualDiscriminatoX')
    with pytest.warns(PartialLoadWarning, match=r"could not restore 'D'.*DualDiscriminatoX"):
        nets = load_network_pkl(path)
    assert 'D' not in nets and isinstance(nets['G_ema'], TriPlaneGenerator)


def test_unknown_generator_class_is_one_line(tmp_path, fixture_pkl):
    path = _patched_fixture(tmp_path, fixture_pkl, b'TriPlaneGenerator', b'TriPlaneGeneratoX')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', PartialLoadWarning)
        with pytest.raises(PickleLoadError) as e:
            load_network_pkl(path)
    assert str(e.value) == f"{path}: G_ema: unsupported network class 'TriPlaneGeneratoX'"


@pytest.mark.parametrize('content, problem', [
    ({'G': None}, "not an EG3D network pickle"),
    ([1, 2, 3], "not an EG3D network pickle"),
    ({'G_ema': 5}, "G_ema: expected a network object"),
])
def test_wrong_content(tmp_path, content, problem):
    path = tmp_path / 'wrong.pkl'
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(PickleLoadError) as e:
        load_network_pkl(path)
    assert str(e.value).startswith(f'{path}: {problem}')
    assert '\n' not in str(e.value)


def test_device_argument(fixture_pkl):
    G = load_generator(fixture_pkl, device='cpu')
    assert G.backbone.mapping.w_avg.device == torch.device('cpu')
