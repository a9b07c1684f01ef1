"""The training objective (eg3d_runtime/training/loss.py) against the official definitions
(docs/eg3d-reference.md 7.3), and ADA's update of p (docs/eg3d-reference.md 7.1). Expected values
come from formulas written here: the stand-in networks below have outputs and input gradients known
in closed form, and R1 on a tiny real discriminator is compared with a gradient taken independently
with autograd."""
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eg3d_runtime import configs
from eg3d_runtime.networks.discriminator import DualDiscriminator
from eg3d_runtime.training import loss as loss_module
from eg3d_runtime.training import stats
from eg3d_runtime.training.loop import TrainingLoop, ada_adjusted_p
from eg3d_runtime.training.loss import EG3DLoss

RES, NRR, N = 8, 4, 3


class LinearD(nn.Module):
    """Stand-in discriminator: logit = Σ a·image + q·Σ image² + Σ b·image_raw, so that
    ∂logit/∂image = a + 2q·image and ∂logit/∂image_raw = b. Records its inputs."""

    def __init__(self, q=0.0, raw_weight=1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(3, RES, RES, generator=g) * 0.1)
        self.b = nn.Parameter(torch.randn(3, NRR, NRR, generator=g) * 0.1 * raw_weight)
        self.q = q
        self.inputs = []

    def forward(self, img, c, update_emas=False):
        self.inputs.append({k: v.detach().clone() for k, v in img.items()})
        x, raw = img['image'], img['image_raw']
        return ((self.a * x + self.q * x.square()).sum([1, 2, 3])
                + (self.b * raw).sum([1, 2, 3]))[:, None]


class StubG(nn.Module):
    """Stand-in generator: ws = z repeated; image = θ + z[:, 0] per sample, image_raw = 0;
    sample_mixed: σ = coords·v + ws[:, 0, 0]. Records what mapping, synthesis and sample_mixed
    receive."""

    def __init__(self, density_reg=0.0, p_dist=0.004):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.theta = nn.Parameter(torch.randn(3, RES, RES, generator=g) * 0.1)
        self.v = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
        self.rendering_kwargs = {'density_reg': density_reg, 'density_reg_p_dist': p_dist,
                                 'reg_type': 'l1', 'box_warp': 1}
        self.neural_rendering_resolution = None
        self.mapped, self.rendered, self.sampled = [], [], []

    def mapping(self, z, c, update_emas=False):
        self.mapped.append(c.clone())
        return z[:, None, :].repeat(1, 2, 1)

    def synthesis(self, ws, c, neural_rendering_resolution=None, update_emas=False):
        self.rendered.append((c.clone(), neural_rendering_resolution))
        n = ws.shape[0]
        image = self.theta.expand(n, -1, -1, -1) + ws[:, 0, 0, None, None, None]
        return {'image': image,
                'image_raw': torch.zeros(n, 3, neural_rendering_resolution,
                                         neural_rendering_resolution)}

    def sample_mixed(self, coordinates, directions, ws, update_emas=False):
        self.sampled.append((coordinates.detach().clone(), ws.detach().clone()))
        return {'sigma': (coordinates @ self.v)[..., None] + ws[:, :1, :1]}


@pytest.fixture
def reports(monkeypatch):
    """Every stats.report(name, value) the loss makes, as {name: [tensor, ...]}."""
    seen = {}

    def report(name, value):
        seen.setdefault(name, []).append(torch.as_tensor(value).detach().clone())
        return value
    monkeypatch.setattr(stats, 'report', report)
    return seen


def make_loss(G, D, **kwargs):
    kwargs.setdefault('neural_rendering_resolution_initial', NRR)
    return EG3DLoss('cpu', G, D, **kwargs)


def inputs(seed=2, n=N):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 3, RES, RES, generator=g)
    c = torch.randn(n, 25, generator=g)
    z = torch.randn(n, 6, generator=g)
    return real, c, z


def softplus(x):
    return np.log1p(np.exp(x))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def blur_kernel(sigma):
    """The official blur taps 2^-(k/σ)², |k| <= floor(3σ), normalised (1-D)."""
    size = math.floor(3 * sigma)
    taps = np.array([2.0 ** -((k / sigma) ** 2) for k in range(-size, size + 1)])
    return taps / taps.sum()


# ------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize('cur_nimg, expected', [
    (0, 10.0), (50_000, 7.5), (100_000, 5.0), (200_000, 0.0), (500_000, 0.0)])
def test_blur_sigma_fades_from_its_initial_value_to_zero(cur_nimg, expected):
    # σ = max(1 - cur_nimg / (fade_kimg·1000), 0) · init; fade 200 kimg from σ 10
    assert loss_module.blur_sigma(cur_nimg, 10, 200) == pytest.approx(expected)
    loss = make_loss(StubG(), LinearD(), blur_init_sigma=10, blur_fade_kimg=200)
    assert loss.schedules(cur_nimg)['blur_sigma'] == pytest.approx(expected)


def test_blur_sigma_is_zero_without_a_fade():
    assert loss_module.blur_sigma(0, 10, 0) == 0


@pytest.mark.parametrize('cur_nimg, expected', [
    (0, 1.0), (250_000, 1 - 0.25 * 0.5), (500_000, 0.75), (1_000_000, 0.5), (3_000_000, 0.5)])
def test_pose_swap_probability_fades_from_one_to_gpc_reg_prob(cur_nimg, expected):
    # α = min(cur_nimg / (fade·1000), 1); p = (1 - α)·1 + α·gpc_reg_prob; here 0.5 over 1000 kimg
    assert loss_module.swap_prob(cur_nimg, 0.5, 1000) == pytest.approx(expected)
    loss = make_loss(StubG(), LinearD(), gpc_reg_prob=0.5, gpc_reg_fade_kimg=1000)
    assert loss.schedules(cur_nimg)['gpc_swap_prob'] == pytest.approx(expected)


def test_pose_swap_probability_without_fade_or_without_gpc():
    assert loss_module.swap_prob(0, 0.8, 0) == pytest.approx(0.8)
    assert loss_module.swap_prob(123, None, 1000) is None


@pytest.mark.parametrize('cur_nimg, expected', [(0, 64), (500_000, 96), (1_000_000, 128),
                                                (2_000_000, 128), (7_000, 64), (8_000, 65)])
def test_neural_rendering_resolution_fade(cur_nimg, expected):
    # nrr = rint(initial·(1 - α) + final·α), α = min(cur_nimg / (fade·1000), 1)
    assert loss_module.neural_rendering_resolution(cur_nimg, 64, 128, 1000) == expected
    assert loss_module.neural_rendering_resolution(cur_nimg, 64, None, 1000) == 64


def test_blur_kernel_is_the_official_base_two_gaussian():
    impulse = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    impulse[0, 0, 10, 10] = 1
    for sigma in (1.0, 2.0, 1.7):
        taps = blur_kernel(sigma)
        size = len(taps) // 2
        expected = np.zeros((21, 21))
        expected[10 - size:11 + size, 10 - size:11 + size] = np.outer(taps, taps)
        out = loss_module.blur(impulse, sigma)[0, 0].numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-9)   # float32 taps
    # floor(3σ) = 0: no blur at all
    assert torch.equal(loss_module.blur(impulse, 0.3), impulse)


def test_discriminator_sees_reals_blurred_with_the_faded_sigma(reports):
    """Half-way through a 100 kimg fade from σ 2, the real image reaches D blurred with σ 1."""
    D = LinearD()
    loss = make_loss(StubG(), D, r1_gamma=1, blur_init_sigma=2, blur_fade_kimg=100)
    real = torch.zeros(1, 3, RES, RES)
    real[0, :, 4, 4] = 1
    loss.accumulate_gradients('Dreg', real, torch.zeros(1, 25), None, None, gain=1,
                              cur_nimg=50_000)
    taps = blur_kernel(1.0)                                  # 7 taps, all inside the 8x8 image
    expected = np.zeros((RES, RES))
    expected[1:8, 1:8] = np.outer(taps, taps)
    seen = D.inputs[0]['image'][0].numpy()
    for channel in seen:
        np.testing.assert_allclose(channel, expected, atol=1e-6)
    # blur_raw_target: image_raw is the resized real, blurred with the same σ (zero padding)
    resized = F.interpolate(real, size=(NRR, NRR), mode='bilinear', align_corners=False,
                            antialias=True)[0, 0].double().numpy()
    padded = np.pad(resized, 3)
    kernel = np.outer(taps, taps)
    blurred = np.array([[np.sum(padded[i:i + 7, j:j + 7] * kernel) for j in range(NRR)]
                        for i in range(NRR)])
    np.testing.assert_allclose(D.inputs[0]['image_raw'][0, 0].numpy(), blurred, atol=1e-6)
    assert np.abs(blurred - resized).max() > 1e-2


# ----------------------------------------------------------------------------------- R1
@pytest.mark.parametrize('dual', [True, False])
def test_r1_penalty_is_half_gamma_times_squared_input_gradient(reports, dual):
    """R1 = γ/2·‖∇D(x)‖² per real sample, over image and image_raw with dual discrimination."""
    gamma, gain, q = 4.0, 16, 0.3
    D = LinearD(q=q)
    loss = make_loss(StubG(), D, r1_gamma=gamma, dual_discrimination=dual)
    real, c, _ = inputs()
    loss.accumulate_gradients('Dreg', real, c, None, None, gain=gain, cur_nimg=0)

    # The gradients, independently with autograd on the stand-in, equal the closed form.
    x = real.clone().requires_grad_(True)
    raw = torch.randn(N, 3, NRR, NRR).requires_grad_(True)
    gx, graw = torch.autograd.grad(D({'image': x, 'image_raw': raw}, c).sum(), [x, raw])
    closed_x = D.a.detach() + 2 * q * real
    torch.testing.assert_close(gx, closed_x)
    torch.testing.assert_close(graw, D.b.detach().expand(N, -1, -1, -1))

    penalty = gx.square().sum([1, 2, 3]) + (graw.square().sum([1, 2, 3]) if dual else 0)
    torch.testing.assert_close(reports['Loss/r1_penalty'][0], penalty)
    torch.testing.assert_close(reports['Loss/D/reg'][0], penalty * gamma / 2)
    assert 'Loss/D/loss' not in reports                      # Dreg adds no logistic term

    # Parameter gradients of gain·mean(γ/2·‖∇‖²): ∂/∂a = gain·γ·mean(a + 2q·x), ∂/∂b = gain·γ·b.
    torch.testing.assert_close(D.a.grad, gain * gamma * closed_x.mean(0))
    if dual:
        torch.testing.assert_close(D.b.grad, gain * gamma * D.b.detach())
    else:
        assert D.b.grad is None or not D.b.grad.any()


def test_r1_of_a_tiny_dual_discriminator_matches_autograd(reports):
    """The real DualDiscriminator (resnet, minibatch std) at 16x16: the penalty the loss reports
    equals Σ‖∂ΣD/∂image‖² + Σ‖∂ΣD/∂image_raw‖² computed here."""
    torch.manual_seed(0)
    D = DualDiscriminator(**configs.discriminator_kwargs(16, channel_base=64, channel_max=8,
                                                         d_num_fp16_res=0))
    D = D.train().requires_grad_(True)
    real, c, _ = inputs(n=2)
    real = F.interpolate(real, size=(16, 16), mode='nearest')
    loss = make_loss(StubG(), D, r1_gamma=2.0, dual_discrimination=True,
                     neural_rendering_resolution_initial=8)
    loss.accumulate_gradients('Dreg', real, c, None, None, gain=1, cur_nimg=0)

    x = real.clone().requires_grad_(True)
    # the official 'antialiased' filtered resizing of the reals to the rendering resolution
    raw = F.interpolate(real, size=(8, 8), mode='bilinear', align_corners=False,
                        antialias=True).requires_grad_(True)
    gx, graw = torch.autograd.grad(D({'image': x, 'image_raw': raw}, c.clone()).sum(), [x, raw])
    penalty = gx.square().sum([1, 2, 3]) + graw.square().sum([1, 2, 3])
    assert penalty.min() > 0
    torch.testing.assert_close(reports['Loss/r1_penalty'][0], penalty, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(reports['Loss/D/reg'][0], penalty, rtol=1e-4, atol=1e-7)
    assert all(p.grad is not None for p in D.b16.parameters() if p.requires_grad)


def test_no_r1_without_gamma(reports):
    D = LinearD()
    loss = make_loss(StubG(), D, r1_gamma=0)
    real, c, _ = inputs()
    loss.accumulate_gradients('Dreg', real, c, None, None, gain=16, cur_nimg=0)
    assert D.inputs == [] and D.a.grad is None


# ------------------------------------------------------------------- non-saturating logistic
def test_generator_loss_is_softplus_of_minus_fake_logits(reports):
    """Gmain: L = softplus(-D(G(z))), mean·gain; with image = θ + z0 and logit = Σ a·image,
    ∂L/∂θ = gain·mean(-sigmoid(-d))·a."""
    G, D = StubG(), LinearD(raw_weight=0)
    gain = 2.0
    loss = make_loss(G, D)
    real, c, z = inputs()
    loss.accumulate_gradients('Gmain', real, c, z, c, gain=gain, cur_nimg=0)

    a = D.a.detach().double().numpy()
    fake = G.theta.detach().double().numpy()[None] + z[:, 0].double().numpy()[:, None, None, None]
    d = (a[None] * fake).sum((1, 2, 3))
    np.testing.assert_allclose(reports['Loss/scores/fake'][0].numpy()[:, 0], d, rtol=1e-5)
    np.testing.assert_allclose(reports['Loss/signs/fake'][0].numpy()[:, 0], np.sign(d))
    np.testing.assert_allclose(reports['Loss/G/loss'][0].numpy()[:, 0], softplus(-d), rtol=1e-5)
    np.testing.assert_allclose(G.theta.grad.numpy(), gain * np.mean(-sigmoid(-d)) * a,
                               rtol=1e-5, atol=1e-8)


def test_discriminator_loss_is_softplus_of_fake_plus_softplus_of_minus_real(reports):
    """Dmain: L = softplus(D(fake)) + softplus(-D(real)), each mean·gain;
    ∂L/∂a = gain·mean(sigmoid(d_fake)·fake - sigmoid(-d_real)·real)."""
    G, D = StubG().requires_grad_(False), LinearD(raw_weight=0)
    gain = 1.0
    loss = make_loss(G, D, r1_gamma=10)
    real, c, z = inputs()
    loss.accumulate_gradients('Dmain', real, c, z, c, gain=gain, cur_nimg=0)

    a = D.a.detach().double().numpy()
    fake = G.theta.double().numpy()[None] + z[:, 0].double().numpy()[:, None, None, None]
    real = real.double().numpy()
    d_fake, d_real = (a[None] * fake).sum((1, 2, 3)), (a[None] * real).sum((1, 2, 3))
    np.testing.assert_allclose(reports['Loss/scores/real'][0].numpy()[:, 0], d_real, rtol=1e-5)
    np.testing.assert_allclose(reports['Loss/signs/real'][0].numpy()[:, 0], np.sign(d_real))
    np.testing.assert_allclose(reports['Loss/D/loss'][0].numpy()[:, 0],
                               softplus(d_fake) + softplus(-d_real), rtol=1e-5)
    assert 'Loss/r1_penalty' not in reports                  # Dmain has no R1
    expected = gain * np.mean(sigmoid(d_fake)[:, None, None, None] * fake
                              - sigmoid(-d_real)[:, None, None, None] * real, axis=0)
    np.testing.assert_allclose(D.a.grad.numpy(), expected, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------- generator pose conditioning
def test_generator_is_conditioned_on_swapped_poses_by_the_fade(reports):
    """p_swap 1 at the start of the fade: every sample maps with the previous sample's pose;
    p_swap = gpc_reg_prob = 0 after it: its own pose; no gpc_reg_prob: zeros. Rendering always
    uses the true pose, at the scheduled resolution."""
    real, c, z = inputs()
    for gpc, cur_nimg, expected in ((0.0, 0, torch.roll(c, 1, 0)), (0.0, 2_000_000, c),
                                    (None, 0, torch.zeros_like(c))):
        G = StubG()
        loss = make_loss(G, LinearD(), gpc_reg_prob=gpc, gpc_reg_fade_kimg=1000)
        loss.accumulate_gradients('Gmain', real, c, z, c, gain=1, cur_nimg=cur_nimg)
        assert torch.equal(G.mapped[0], expected)
        (rendered_c, nrr), = G.rendered
        assert torch.equal(rendered_c, c) and nrr == NRR


def test_pose_swaps_are_per_sample_in_gmain_and_per_batch_in_density_reg(reports):
    real, c, z = inputs(n=8)
    rolled = torch.roll(c, 1, 0)
    G = StubG(density_reg=1.0)
    loss = make_loss(G, LinearD(), gpc_reg_prob=0.5, gpc_reg_fade_kimg=0)
    torch.manual_seed(3)
    for _ in range(20):
        loss.accumulate_gradients('Greg', real, c, z, c, gain=1, cur_nimg=0)
    whole = [bool(torch.equal(m, rolled)) for m in G.mapped]
    assert all(torch.equal(m, rolled) or torch.equal(m, c) for m in G.mapped)
    assert any(whole) and not all(whole)
    G.mapped.clear()
    loss.accumulate_gradients('Gmain', real, c, z, c, gain=1, cur_nimg=0)
    swapped = (G.mapped[0] == rolled).all(1) & ~(G.mapped[0] == c).all(1)
    kept = (G.mapped[0] == c).all(1)
    assert bool((swapped | kept).all()) and swapped.any() and kept.any()


# ---------------------------------------------------------------------- density regularisation
def test_density_regularisation_is_l1_between_perturbed_points(reports):
    """Greg ('l1'): x0 ~ U[-1, 1]³ (1000 per sample), x1 = x0 + N(0, 1)·density_reg_p_dist,
    L = mean|σ(x0) - σ(x1)|·density_reg·gain. With σ = x·v + w: ∂L/∂v =
    gain·density_reg·mean(sign((x0 - x1)·v)·(x0 - x1))."""
    reg, p_dist, gain = 0.25, 0.004, 4
    G = StubG(density_reg=reg, p_dist=p_dist)
    loss = make_loss(G, LinearD())
    real, c, z = inputs()
    torch.manual_seed(4)
    loss.accumulate_gradients('Greg', real, c, z, c, gain=gain, cur_nimg=0)

    (coords, ws), = G.sampled
    assert coords.shape == (N, 2000, 3)
    assert torch.equal(ws, z[:, None, :].repeat(1, 2, 1))    # the mapped ws of gen_z
    x0, x1 = coords[:, :1000].double(), coords[:, 1000:].double()
    assert x0.min() >= -1 and x0.max() <= 1 and x0.min() < -0.99 and x0.max() > 0.99
    delta = x0 - x1
    assert abs(float(delta.std()) / p_dist - 1) < 0.05 and abs(float(delta.mean())) < 3e-4
    v = G.v.detach().double()
    expected = gain * reg * (torch.sign(delta @ v)[..., None] * delta).mean((0, 1))
    torch.testing.assert_close(G.v.grad.double(), expected, rtol=1e-4, atol=1e-9)
    assert G.theta.grad is None                              # no image is rendered in Greg
    assert not reports                                       # and nothing is reported


def test_no_density_regularisation_when_its_weight_is_zero(reports):
    G = StubG(density_reg=0.0)
    loss = make_loss(G, LinearD())
    real, c, z = inputs()
    loss.accumulate_gradients('Greg', real, c, z, c, gain=4, cur_nimg=0)
    assert G.sampled == [] and G.v.grad is None
    loss.accumulate_gradients('Gboth', real, c, z, c, gain=1, cur_nimg=0)
    assert G.sampled == [] and len(G.rendered) == 1          # Gboth ran as Gmain


# ----------------------------------------------------------------------------------- ADA
def test_ada_p_moves_toward_the_target():
    """p ← max(0, p + sign(r_t - target)·batch·interval/(ada_kimg·1000))."""
    step = 32 * 4 / (500 * 1000)
    assert ada_adjusted_p(0.2, 0.9, 0.6, 32, 4, 500) == pytest.approx(0.2 + step)   # overfitting
    assert ada_adjusted_p(0.2, 0.1, 0.6, 32, 4, 500) == pytest.approx(0.2 - step)
    assert ada_adjusted_p(0.2, 0.6, 0.6, 32, 4, 500) == pytest.approx(0.2)
    assert ada_adjusted_p(step / 2, -1.0, 0.6, 32, 4, 500) == 0.0                   # floor at 0
    assert ada_adjusted_p(0.0, 1.0, 0.6, 8, 2, 100) == pytest.approx(8 * 2 / 100_000)


def test_training_loop_applies_the_ada_step_every_interval():
    class Signs:
        value = 0.9

        def update(self):
            pass

        def mean(self, name):
            assert name == 'Loss/signs/real'
            return self.value

    loop = types.SimpleNamespace(
        ada_stats=Signs(), augment_pipe=types.SimpleNamespace(p=torch.tensor(0.5)),
        o={'ada_target': 0.6, 'ada_interval': 4, 'ada_kimg': 100}, batch_size=16)
    step = 16 * 4 / (100 * 1000)
    TrainingLoop._update_ada(loop, 3)                       # not an ADA iteration
    assert float(loop.augment_pipe.p) == 0.5
    TrainingLoop._update_ada(loop, 4)
    assert float(loop.augment_pipe.p) == pytest.approx(0.5 + step)
    loop.ada_stats.value = 0.2
    TrainingLoop._update_ada(loop, 8)
    TrainingLoop._update_ada(loop, 12)
    assert float(loop.augment_pipe.p) == pytest.approx(0.5 - step)
    loop.ada_stats.value = float('nan')                      # no reals reported: unchanged
    TrainingLoop._update_ada(loop, 16)
    assert float(loop.augment_pipe.p) == pytest.approx(0.5 - step)
