"""Every --cfg family builds with the official names, shapes and counts
(docs/eg3d-reference.md 2.9) and renders."""
import pytest
import torch

from eg3d_runtime import cameras, configs
from eg3d_runtime.engine import RenderSettings, Session

# (state-dict entries without dataset_label_std, parameters, buffer elements) from
# docs/eg3d-reference.md 2.9.
G_COUNTS = {'ffhq': (176, 30_662_136, 831_024), 'afhq': (176, 30_662_136, 831_024),
            'shapenet': (177, 29_587_512, 216_640)}
D_COUNTS = {'ffhq': (92, 31_359_744, 496), 'afhq': (92, 31_359_744, 496),
            'shapenet': (74, 30_766_592, 368)}


def counts(net):
    return (len(net.state_dict()), sum(p.numel() for p in net.parameters()),
            sum(b.numel() for b in net.buffers()))


@pytest.fixture(scope='module', params=['ffhq', 'afhq', 'shapenet'])
def family(request):
    torch.manual_seed(0)
    return request.param, configs.build_generator(request.param)


def test_generator_structure(family):
    cfg, G = family
    assert counts(G) == G_COUNTS[cfg]
    sd = G.state_dict()
    assert list(sd)[:2] == ['backbone.synthesis.b4.const', 'backbone.synthesis.b4.resample_filter']
    assert list(sd)[-4:] == ['decoder.net.0.weight', 'decoder.net.0.bias',
                             'decoder.net.2.weight', 'decoder.net.2.bias']
    assert sd['backbone.synthesis.b256.torgb.weight'].shape == (96, 128, 1, 1)
    assert sd['backbone.synthesis.b128.conv0.weight'].shape == (256, 512, 3, 3)
    assert sd['backbone.mapping.fc0.weight'].shape == (512, 1024)
    if cfg == 'shapenet':
        assert sd['superresolution.resample_filter'].shape == (4, 4)
        assert sd['superresolution.block0.conv0.weight'].shape == (128, 32, 3, 3)
        assert sd['superresolution.block1.conv1.noise_const'].shape == (128, 128)
    else:
        assert 'superresolution.resample_filter' not in sd
        assert sd['superresolution.block0.conv0.weight'].shape == (256, 32, 3, 3)
        assert sd['superresolution.block1.conv0.noise_const'].shape == (512, 512)
    assert G.backbone.mapping.num_ws == 14


def test_discriminator_structure(family):
    cfg, G = family
    D = configs.build_discriminator(cfg)
    assert counts(D) == D_COUNTS[cfg]
    first = 'b512.fromrgb.weight' if cfg != 'shapenet' else 'b128.fromrgb.weight'
    assert list(D.state_dict())[:2] == ['resample_filter', first.replace('fromrgb.weight',
                                                                          'resample_filter')]
    img = {'image': torch.zeros(2, 3, G.img_resolution, G.img_resolution),
           'image_raw': torch.zeros(2, 3, 64, 64)}
    with torch.no_grad():
        logits = D(img, torch.zeros(2, 25))
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


def test_family_renders(family):
    cfg, G = family
    c = cameras.orbit_camera_for(G.rendering_kwargs, 0.2, -0.1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 512), c, truncation_psi=0.7, truncation_cutoff=14)
    out = Session(G).frame(ws, c, RenderSettings(nrr=32)).as_dict()
    res = G.img_resolution
    assert out['image'].shape == (1, 3, res, res)
    assert out['image_raw'].shape == (1, 3, 32, 32)
    assert out['image_depth'].shape == (1, 1, 32, 32)
    for v in out.values():
        assert torch.isfinite(v).all()
    lo, hi = G.rendering_kwargs['ray_start'], G.rendering_kwargs['ray_end']
    step = (hi - lo) / (G.rendering_kwargs['depth_resolution'] - 1)
    assert out['image_depth'].min() >= lo - 1e-4 and out['image_depth'].max() <= hi + step + 1e-4


def test_shapenet_auto_bounds_and_white_background():
    torch.manual_seed(0)
    G = configs.build_generator('shapenet')
    G.rendering_kwargs.update(ray_start='auto', ray_end='auto')
    with torch.no_grad():
        for p in G.decoder.parameters():   # zero density everywhere: only the background is seen
            p.zero_()
        G.decoder.net[2].bias[0] = -1e4
        c = cameras.orbit_camera_for(G.rendering_kwargs, 0.5, 0.0)
        ws = G.mapping(torch.randn(1, 512), c)
    out = Session(G).frame(ws, c, RenderSettings(nrr=16)).as_dict()
    assert torch.allclose(out['image_raw'], torch.ones_like(out['image_raw']), atol=1e-4)
