"""eg3d_runtime: load official EG3D network pickles safely and render them on CPU or CUDA."""
from .pickles import (PartialLoadWarning, PickleLoadError, load_generator, load_network_pkl,
                      save_network_pkl)

__all__ = ['load_network_pkl', 'load_generator', 'save_network_pkl', 'PickleLoadError',
           'PartialLoadWarning']
