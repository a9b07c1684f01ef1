"""Recorded constructor arguments and rendering options are checked at load: a pickle in the
official format whose values are wrong, or whose shared structures would expand without bound,
is refused in one line naming the file and what is wrong."""
import math
import warnings

import pytest

from eg3d_runtime import PickleLoadError, configs, load_generator
from eg3d_runtime.pickles import writer as pickle_writer
from eg3d_runtime.networks.discriminator import DualDiscriminator
from eg3d_runtime.networks.triplane import TriPlaneGenerator
from eg3d_runtime.pickles.loader import PartialLoadWarning, load_network_pkl
from eg3d_runtime.pickles.safe_unpickle import PlainRecord, module_state_dict


def tiny_generator():
    """A demo-family generator at toy size, built the way train.py builds one."""
    kwargs = configs.generator_kwargs(configs.rendering_kwargs('demo'), 64, channel_base=64,
                                      channel_max=8)
    return TriPlaneGenerator(**kwargs, plane_resolution=16).eval().requires_grad_(False)


def shared_list(depth):
    """A list holding the same list twice, `depth` levels deep: 2**depth values expanded."""
    value = []
    for _ in range(depth):
        value = [value, value]
    return value


def write(path, args=None, attributes=None):
    """A snapshot whose recorded arguments (`args`) and generator attributes were changed."""
    G = tiny_generator()
    (args or (lambda kwargs: None))(G._init_kwargs)
    (attributes or (lambda G: None))(G)
    pickle_writer.save_network_pkl(path, {'training_set_kwargs': None, 'G': G, 'D': G,
                                          'G_ema': G, 'augment_pipe': None})
    return path


def rendering(**values):
    """Changes the rendering options everywhere the official code records them."""
    def edit(kwargs):
        kwargs['rendering_kwargs'].update(values)
    return edit


def argument(**values):
    return lambda kwargs: kwargs.update(values)


CASES = {
    'depth samples as text': (rendering(depth_resolution='48'), None,
                              "rendering_kwargs['depth_resolution'] must be an integer from 2 to "
                              "1024, got '48'"),
    'NaN ray start': (rendering(ray_start=math.nan), None,
                      "rendering_kwargs['ray_start'], ['ray_end'] must both be 'auto' or numbers "
                      'with 0 < ray_start < ray_end, got nan, 3.3'),
    'half auto': (rendering(ray_start='auto'), None,
                  "rendering_kwargs['ray_start'], ['ray_end'] must both be 'auto' or numbers "
                  "with 0 < ray_start < ray_end, got 'auto', 3.3"),
    'negative box': (rendering(box_warp=-1), None,
                     "rendering_kwargs['box_warp'] must be a finite number > 0, got -1"),
    'unknown super-resolution': (
        rendering(superresolution_module='training.superresolution.Nope'), None,
        "rendering_kwargs['superresolution_module'] must name one of SuperresolutionHybrid8XDC, "
        'SuperresolutionHybrid8X, SuperresolutionHybrid4X, SuperresolutionHybrid2X, '
        "SuperresolutionHybridDeepfp32, SuperresolutionDemo2X, got 'training.superresolution.Nope'"),
    'too few samples for importance': (
        rendering(depth_resolution=3), None,
        "rendering_kwargs['depth_resolution'] must be at least 4 with importance samples, got 3"),
    'missing option': (lambda kwargs: kwargs['rendering_kwargs'].pop('box_warp'), None,
                       "rendering_kwargs lacks 'box_warp'"),
    'huge z_dim': (argument(z_dim=10 ** 9), None,
                   'z_dim must be an integer from 1 to 4096, got 1000000000'),
    'fractional channels': (argument(channel_max=8.5), None,
                            'channel_max must be an integer from 1 to 4096, got 8.5'),
    'wrong image size': (argument(img_resolution=128), None,
                         'img_resolution must be 64 for SuperresolutionDemo2X, got 128'),
    'bad attribute only': (None, lambda G: G.rendering_kwargs.update(ray_end=math.inf),
                           "rendering_kwargs['ray_start'], ['ray_end'] must both be 'auto' or "
                           'numbers with 0 < ray_start < ray_end, got 2.25, inf'),
    'resolution as text': (None, lambda G: setattr(G, 'neural_rendering_resolution', '64'),
                           "neural_rendering_resolution must be an integer from 1 to 4096, got "
                           "'64'"),
    '2**64 shared values': (argument(mapping_kwargs={'num_layers': 2, 'x': shared_list(64)}),
                            None, 'the recorded arguments of TriPlaneGenerator are nested too '
                                  'deeply (more than 32 levels)'),
    '2**16 shared values': (argument(mapping_kwargs={'num_layers': 2, 'x': shared_list(16)}),
                            None, 'the recorded arguments of TriPlaneGenerator are too large '
                                  '(more than 10000 values once shared parts are expanded)'),
    'unknown argument': (argument(bogus=1), None,
                         "cannot construct TriPlaneGenerator from its recorded arguments "
                         "(TypeError: SynthesisLayer.__init__() got an unexpected keyword "
                         "argument 'bogus')"),
}


@pytest.mark.parametrize('case', list(CASES))
def test_wrong_recorded_values_are_one_line(tmp_path, case):
    args, attributes, problem = CASES[case]
    path = write(tmp_path / 'x.pkl', args, attributes)
    with pytest.raises(PickleLoadError) as e:
        load_generator(path)
    assert str(e.value) == f'{path}: G_ema: {problem}'


def test_good_networks_still_load(tmp_path, fixture_pkl):
    G = load_generator(write(tmp_path / 'good.pkl'))
    assert G.rendering_kwargs == configs.rendering_kwargs('demo')
    assert type(G.rendering_kwargs) is dict and G.neural_rendering_resolution == 64
    assert load_generator(fixture_pkl).rendering_kwargs['ray_start'] == 2.25


def test_shared_module_graphs_are_refused():
    def module(children):
        return PlainRecord('torch.nn.modules.container.Sequential',
                           {'_parameters': {}, '_buffers': {}, '_modules': children})

    def shared(depth):
        node = module({})
        for _ in range(depth):
            node = module({'a': node, 'b': node})
        return node
    with pytest.raises(ValueError, match=r'^module graph too large: more than 10000 modules'):
        module_state_dict(shared(16))
    with pytest.raises(ValueError, match=r'modules nested too deeply \(more than 32 levels\)$'):
        module_state_dict(shared(64))


def test_wrong_discriminator_arguments_are_one_line_and_spare_the_generator(tmp_path,
                                                                          fixture_pkl):
    """An absurd discriminator (here up to 10**6 channels a layer: terabytes of weights) is
    refused before it is built; the generator still loads, and official discriminators pass."""
    D = DualDiscriminator(c_dim=25, img_resolution=64, img_channels=3, channel_base=64,
                          channel_max=8)
    D._init_kwargs.update(channel_base=10 ** 12, channel_max=10 ** 6)
    G = tiny_generator()
    path = tmp_path / 'd.pkl'
    pickle_writer.save_network_pkl(path, {'training_set_kwargs': None, 'G': G, 'D': D,
                                          'G_ema': G, 'augment_pipe': None})
    with pytest.warns(PartialLoadWarning) as caught:
        data = load_network_pkl(path)
    assert [str(w.message) for w in caught] == [
        f"{path}: could not restore 'D': channel_base must be an integer from 1 to 1048576, "
        'got 1000000000000']
    assert 'D' not in data and data['G_ema'] is not None
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert type(load_network_pkl(fixture_pkl)['D']) is DualDiscriminator
