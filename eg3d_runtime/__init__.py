"""eg3d_runtime: load official EG3D network pickles safely and render them on CPU or CUDA."""
from .pickle_writer import save_network_pkl
from .pickles import PartialLoadWarning, load_generator, load_network_pkl
from .safe_unpickle import PickleLoadError

__all__ = ['load_network_pkl', 'load_generator', 'save_network_pkl', 'PickleLoadError',
           'PartialLoadWarning']
