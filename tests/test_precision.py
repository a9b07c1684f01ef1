"""Precision of the fast path: explicit choices are obeyed and stay within measured bounds,
'auto' is decided by measurement, and both answers of the CPU bf16 probe are simulated
($EG3D_CPU_BF16; conftest.py makes "no" the default), so that no machine hides a failure.

Reduced formats are emulated on CPUs without native kernels (slow at 512x512), so the frames
here come from the bundled demo network (64x64); the full-size fixture's bf16 frame is the slow
test in test_fast_paths.py."""
import copy
import json
import time

import pytest
import torch

from eg3d_runtime import cameras, configs, load_network_pkl
from eg3d_runtime.engine import Precision, RenderSettings, Session
from eg3d_runtime.fast import conv as fastconv
from eg3d_runtime.fast import precision
from eg3d_runtime.networks.superresolution import SUPERRESOLUTION_CLASSES
from eg3d_runtime.networks.triplane import TriPlaneGenerator

from conftest import REPO, relative_rms

# Relative RMS against the faithful float32 path, about twice the worst measured on the demo
# network (3 seeds and views; the 37.6 kimg demo): bf16 3.1e-3 image, 2.3e-3 raw, 6.2e-3 depth;
# fp16 4.3e-4, 2.6e-4, 3.0e-3; fp32 5e-7. The depth's RMS comes from 0-8 of 4096 pixels where a
# ray's depth jumps (beside a silhouette: the sharper the figure, the larger the jump); the
# depth of at least half the pixels is exactly the same.
BOUNDS = {'fp32': {'image': 1e-5, 'image_raw': 1e-5, 'image_depth': 1e-5},
          'bf16': {'image': 1e-2, 'image_raw': 1e-2, 'image_depth': 1.2e-2},
          'fp16': {'image': 1e-3, 'image_raw': 1e-3, 'image_depth': 6e-3}}


@pytest.fixture(scope='module')
def demo_G():
    return load_network_pkl(REPO / 'checkpoints' / 'demo.pkl')['G_ema']


@pytest.fixture
def G(demo_G, user_dirs):
    """A copy with a fresh engine session; measurements go to a temporary cache."""
    precision.forget()
    yield copy.deepcopy(demo_G)
    precision.forget()


def _inputs(G, seed=1):
    torch.manual_seed(seed)
    c = cameras.orbit_camera_for(G.rendering_kwargs, 0.3, 0.1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim), c, truncation_psi=0.7)
    return ws, c


def _frames(G, **kw):
    ws, c = _inputs(G)
    with torch.no_grad():
        fast = G.synthesis(ws, c, noise_mode='const', deterministic=True, **kw)
        ref = G.synthesis(ws, c, noise_mode='const', deterministic=True, faithful=True)
    return fast, ref


def _busy(seconds):
    """A stand-in for a measured piece: `seconds` of CPU time (the measurement's clock)."""
    def run():
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    return run


def _simulate_timings(monkeypatch, seconds):
    """Replace the measured piece by `seconds[name]` of work; returns the formats timed."""
    made = []

    def runner(G, device, dtype, winograd, workspace=None):
        name = precision.name_of(dtype)
        made.append(name)
        return _busy(seconds[name])
    monkeypatch.setattr(precision, 'superresolution_runner', runner)
    return made


@pytest.mark.parametrize('name', ['fp32', 'bf16', 'fp16'])
def test_explicit_precision_is_obeyed_within_its_bound(G, name):
    G.session = Session(G, 'cpu', name)
    assert G.session.precision_in_use() == Precision(name, name)
    fast, ref = _frames(G)
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < BOUNDS[name][key], key
    if name != 'fp32':                                 # the reduced format really ran
        assert relative_rms(fast['image'], ref['image']) > 1e-5


def test_unknown_precision_is_refused(G):
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Session(G, 'cpu', 'fp8')


def test_auto_without_native_bf16_is_fp32_and_measures_nothing(G, monkeypatch):
    monkeypatch.setenv('EG3D_CPU_BF16', '0')
    made = _simulate_timings(monkeypatch, {'fp32': 0.02, 'bf16': 0.001})
    assert Session(G).precision_in_use() == Precision('fp32', 'fp32')
    assert made == [] and not precision.cache_file().exists()


def test_auto_keeps_fp32_where_native_bf16_is_measured_slower(G, monkeypatch):
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    made = _simulate_timings(monkeypatch, {'fp32': 0.002, 'bf16': 0.02})
    assert G.session.precision_in_use().superresolution == 'fp32'
    assert sorted(made) == ['bf16', 'fp32']
    (record,) = json.loads(precision.cache_file().read_text()).values()
    assert record['choice'] == 'fp32' and record['bf16_ms'] > record['fp32_ms'] > 0
    fast, ref = _frames(G)                             # and the frame is float32 arithmetic
    for key in ref:
        assert relative_rms(fast[key], ref[key]) < BOUNDS['fp32'][key], key


def test_auto_picks_bf16_where_measured_faster_and_remembers_it(G, monkeypatch):
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    _simulate_timings(monkeypatch, {'fp32': 0.02, 'bf16': 0.002})
    assert Session(G).precision_in_use() == Precision('fp32', 'bf16')
    # A later process (no memory) with another copy of the network: the cache file answers.
    precision.forget()
    made = _simulate_timings(monkeypatch, {'fp32': 0.001, 'bf16': 0.02})
    assert Session(copy.deepcopy(G)).precision_in_use().superresolution == 'bf16'
    assert made == []


def test_a_tie_keeps_fp32_and_an_unwritable_cache_only_costs_a_measurement(G, monkeypatch,
                                                                           tmp_path):
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    blocker = tmp_path / 'not-a-dir'
    blocker.write_text('')
    monkeypatch.setenv('XDG_CACHE_HOME', str(blocker))
    _simulate_timings(monkeypatch, {'fp32': 0.01, 'bf16': 0.0095})
    assert Session(G).precision_in_use().superresolution == 'fp32'


@pytest.fixture(scope='module')
def generators_by_sr_class():
    """name -> generator with a narrow backbone and that full-size super-resolution class."""
    made = {}
    for name, cls in SUPERRESOLUTION_CLASSES.items():
        rendering = configs.rendering_kwargs(
            'demo', resolution=cls.img_resolution,
            sr_module=f'eg3d_runtime.networks.superresolution.{name}')
        torch.manual_seed(0)
        made[name] = TriPlaneGenerator(**configs.generator_kwargs(
            rendering, cls.img_resolution, channel_base=512, channel_max=16)).eval()
    return made


def _record_convolutions(monkeypatch):
    """Every folded convolution call as (kind, method, dtype, input shape, output shape), the
    call answered with zeros: what runs is recorded, not computed (bf16 is slow where emulated)."""
    calls = []

    def spy(conv, x, out=None):
        h, w = x.shape[:2]
        s = 2 if conv.kind == 'up3' else 1
        out = torch.zeros(s * h, s * w, conv.out_channels) if out is None else out.zero_()
        calls.append((conv.kind, conv.method, conv.dtype, tuple(x.shape), tuple(out.shape)))
        return out
    monkeypatch.setattr(fastconv.FixedConv, '__call__', spy)
    return calls


@pytest.mark.parametrize('probe', ['0', '1'])
@pytest.mark.parametrize('sr_class', sorted(SUPERRESOLUTION_CLASSES))
@pytest.mark.parametrize('nrr_of_input', [0.5, 1])
def test_auto_measures_the_layers_a_frame_runs(generators_by_sr_class, sr_class, nrr_of_input,
                                               probe, monkeypatch, user_dirs):
    """'auto' times the super-resolution with the methods and sizes of a full frame's (the
    first measurement timed a 16x16 patch: direct convolutions where frames run Winograd)."""
    monkeypatch.setenv('EG3D_CPU_BF16', probe)
    precision.forget()
    G = copy.deepcopy(generators_by_sr_class[sr_class])
    G.neural_rendering_resolution = int(G.superresolution.input_resolution * nrr_of_input)
    calls = _record_convolutions(monkeypatch)
    auto = Session(G).precision_in_use().superresolution
    measured = list(calls)

    def frame_convolutions(name):
        session = Session(G, precision=name)
        ws = torch.randn(1, G.backbone.num_ws, G.w_dim)
        c = cameras.orbit_camera_for(G.rendering_kwargs, 0.2, 0.1)
        planes = session.planes(ws)
        del calls[:]
        session.frame(ws, c, RenderSettings(), planes)       # the super-resolution's convolutions
        return list(calls)
    frames = {name: frame_convolutions(name) for name in ('fp32', 'bf16')}
    if probe == '0':
        assert auto == 'fp32' and measured == []
        return
    assert auto in ('fp32', 'bf16')
    for name, frame in frames.items():
        dtype = precision.DTYPES[name]
        timed = [call for call in measured if call[2] == dtype]
        runs = len(timed) // len(frame)
        assert runs >= 3 and timed == frame * runs, name          # warm-up + rounds
    assert any(call[1] == 'winograd' for call in frames['fp32'])


def test_records_of_another_measurement_version_are_ignored_and_dropped(G, monkeypatch):
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    made = _simulate_timings(monkeypatch, {'fp32': 0.002, 'bf16': 0.02})
    key = f'{precision.machine_key()} | sr whatever'
    precision.cache_file().parent.mkdir(parents=True, exist_ok=True)
    precision.cache_file().write_text(json.dumps({key: {'choice': 'bf16', 'fp32_ms': 41.3,
                                                        'bf16_ms': 27.2}}))
    assert Session(G).precision_in_use().superresolution == 'fp32'
    assert sorted(made) == ['bf16', 'fp32']
    (stored,) = json.loads(precision.cache_file().read_text())
    assert stored.startswith(f'v{precision.VERSION} | ')


def test_one_slow_sample_does_not_decide():
    """Minima over interleaved rounds: one run of fp32 slowed by another process leaves it
    chosen; a clear difference stops after two rounds. (A fake clock: the durations given.)"""
    durations = {'fp32': iter([0.0, 0.03, 0.004, 0.004]), 'bf16': iter([0.0, 0.005, 0.005,
                                                                         0.005])}
    clock = [0.0]

    def runner(name):
        def run():
            clock[0] += next(durations[name])
        return run
    times = precision._time_formats({name: runner(name) for name in durations}, 3,
                                    lambda: clock[0])
    assert [min(t) for t in times.values()] == pytest.approx([0.004, 0.005])
    assert len(times['fp32']) == 3
    durations = {'fp32': iter([0.0, 0.004, 0.004]), 'bf16': iter([0.0, 0.02, 0.02])}
    times = precision._time_formats({name: runner(name) for name in durations}, 3,
                                    lambda: clock[0])
    assert len(times['bf16']) == 2


def test_real_measurement_runs_on_this_machine(G, monkeypatch):
    """The measured piece itself (bf16 emulated where it is not native)."""
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    assert Session(G).precision_in_use().superresolution in ('fp32', 'bf16')
    (record,) = json.loads(precision.cache_file().read_text()).values()
    assert record['fp32_ms'] > 0 and record['bf16_ms'] > 0


def test_cuda_auto_is_fp16_super_resolution_and_fp32_backbone(G):
    session = Session(G, 'cuda')                      # only the choice: no CUDA needed
    assert session.dtype('sr') == torch.float16
    assert session.dtype('backbone') == torch.float32
    assert session.dtype('sr', force_fp32=True) == torch.float32


def test_force_fp32_overrides_an_auto_bf16_choice(G, monkeypatch):
    monkeypatch.setenv('EG3D_CPU_BF16', '1')
    _simulate_timings(monkeypatch, {'fp32': 0.02, 'bf16': 0.002})
    auto, ref = _frames(G)
    forced, _ = _frames(G, force_fp32=True)
    assert G.session.precision_in_use().superresolution == 'bf16'
    assert G.session.precision_in_use(force_fp32=True) == Precision('fp32', 'fp32')
    # a frame says which precision ran
    ws, c = _inputs(G)
    settings = RenderSettings(deterministic=True)
    assert G.session.frame(ws, c, settings).precision == Precision('fp32', 'bf16')
    assert G.session.frame(ws, c, RenderSettings(force_fp32=True)).precision == \
        Precision('fp32', 'fp32')
    assert G.session.frame(ws, c, RenderSettings(superresolution=False)).precision == \
        Precision('fp32', None)
    # auto ran bf16: its image differs from fp32 by far more than the forced run's
    assert relative_rms(auto['image'], ref['image']) > \
        max(10 * relative_rms(forced['image'], ref['image']), 1e-6)
    for key in ref:
        assert relative_rms(forced[key], ref[key]) <= 1e-5, key
    # the backbone too, and G.planes
    G.session = Session(G, 'cpu', 'bf16')
    ws, _ = _inputs(G)
    with torch.no_grad():
        planes = G.planes(ws, noise_mode='const', force_fp32=True)
        reduced = G.planes(ws, noise_mode='const')
        exact = G.planes(ws, noise_mode='const', faithful=True)
    assert relative_rms(planes, exact) <= 1e-5
    assert relative_rms(reduced, exact) > 1e-4


def test_probe_never_raises(monkeypatch):
    monkeypatch.delenv('EG3D_CPU_BF16')
    assert isinstance(precision.cpu_supports_bf16(), bool)

    def broken():
        raise RuntimeError('no oneDNN here')
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', broken)
    assert precision.cpu_supports_bf16() is False
