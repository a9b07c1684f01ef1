"""Network pickles in the official EG3D format: safe_unpickle reads a file into inert records
(nothing from the file is run), loader rebuilds our networks from them after recorded_args has
checked their arguments, and writer saves snapshots the official loader opens, with the network
source module_source bundles; shared opens each file once per process for the viewer's parts."""
from .loader import PartialLoadWarning, load_generator, load_network_pkl
from .shared import open_generator
from .unpickler import PickleLoadError
from .writer import save_network_pkl

__all__ = ['load_network_pkl', 'load_generator', 'open_generator', 'save_network_pkl',
           'PickleLoadError', 'PartialLoadWarning']
