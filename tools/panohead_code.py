"""Run PanoHead's own code (a checkout of SizheAn/PanoHead, e.g. commit 17ad915) in this
process, on the CPU, for the fixture (panohead_fixture.py) and the speed comparison
(panohead_bench.py). Nothing of it is part of this project: it is imported from the checkout
given on the command line.

Its custom CUDA ops fall back to their reference paths on a CPU. Three of its imports are not
needed for inference and are replaced by empty stand-ins where missing (`requests`,
`distutils.util.strtobool` on Python >= 3.12, `click` for legacy.py's command line).
`deterministic()` turns off its stochastic sampling the way the fixtures were made:
`torch.rand_like` in its renderer gives zeros (no stratified jitter) and importance sampling
uses `det=True`.
"""
import math
import sys
import types

import numpy as np
import torch


def _stand_in(name, **attributes):
    if name in sys.modules:
        return
    try:
        __import__(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def _decorator(*args, **kwargs):
    return lambda function: function


def _strtobool(text):
    return text.lower() in ('y', 'yes', 't', 'true', 'on', '1')


def import_panohead(checkout):
    """Put the checkout first on sys.path and import what the tools use from it."""
    _stand_in('requests')
    _stand_in('distutils')
    _stand_in('distutils.util', strtobool=_strtobool)
    _stand_in('click', command=_decorator, option=_decorator, argument=_decorator,
              group=_decorator, Choice=lambda *a, **k: None)
    sys.path.insert(0, str(checkout))
    import legacy                                                        # noqa: F401
    import training.triplane
    import training.dual_discriminator                                   # noqa: F401
    from training.volumetric_rendering import renderer                   # noqa: F401
    return sys.modules


def deterministic():
    """No stratified jitter, importance samples at linspace(0, 1, n) (see the docstring)."""
    renderer = sys.modules['training.volumetric_rendering.renderer']

    class _Torch(types.ModuleType):
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def rand_like(x, *args, **kwargs):
            return torch.zeros_like(x)

    renderer.torch = _Torch('torch')
    sample_pdf = renderer.ImportanceRenderer.sample_pdf

    def sample_pdf_det(self, bins, weights, n_importance, det=False, eps=1e-5):
        return sample_pdf(self, bins, weights, n_importance, det=True, eps=eps)
    renderer.ImportanceRenderer.sample_pdf = sample_pdf_det


def load(path):
    """A snapshot through PanoHead's own loader (which runs the source embedded in it)."""
    legacy = sys.modules['legacy']
    with open(path, 'rb') as f:
        return legacy.load_network_pkl(f)


def camera(horizontal, vertical, pivot=(0, 0, 0), radius=2.7, fov_degrees=18.837):
    """c [1, 25] by PanoHead's camera_utils (LookAtPoseSampler, FOV_to_intrinsics)."""
    from camera_utils import FOV_to_intrinsics, LookAtPoseSampler
    pose = LookAtPoseSampler.sample(horizontal, vertical, torch.tensor(pivot, dtype=torch.float32),
                                    radius=radius)
    return torch.cat([pose.reshape(-1, 16), FOV_to_intrinsics(fov_degrees).reshape(-1, 9)], 1)


def render_camera(yaw, pitch, **kwargs):
    """The fixture's render camera: LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, ...)."""
    return camera(math.pi / 2 + yaw, math.pi / 2 + pitch, **kwargs)


def conditioning_camera(pose_cond_degrees=90, **kwargs):
    """PanoHead's --pose_cond camera: sample(pose_cond / 180 * pi, pi / 2, ...)."""
    return camera(pose_cond_degrees / 180 * np.pi, np.pi / 2, **kwargs)
