"""eg3d_runtime: load official EG3D network pickles safely and render them on CPU or CUDA.

The names below are imported on first use (PEP 562), so that a command refusing a bad option
(eg3d_runtime.arguments) does it before torch is loaded: in a fraction of a second."""
import importlib

_EXPORTS = {name: '.pickles' for name in ('PartialLoadWarning', 'PickleLoadError',
                                          'load_generator', 'load_network_pkl',
                                          'save_network_pkl')}

__all__ = ['load_network_pkl', 'load_generator', 'save_network_pkl', 'PickleLoadError',
           'PartialLoadWarning']


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
