"""Networks remember their constructor arguments, as the official `persistence` decorator does.

A saved network carries `_init_args` / `_init_kwargs` (docs/eg3d-reference.md 1.3, 1.5) so that any
loader can rebuild the same architecture: our safe loader does exactly that, official scripts read
them as `init_args` / `init_kwargs`. This module is part of the source embedded in saved pickles
(`module_source.py`), so it imports only the standard library.
"""
import copy
import functools


def _recording(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # The outermost constructor finishes last, so its arguments are the ones kept.
        self._init_args = copy.deepcopy(args)
        self._init_kwargs = copy.deepcopy(kwargs)
    return __init__


def records_init_args(cls):
    """Class decorator: instances of `cls` and of every subclass keep deep copies of the
    arguments of the constructor they were created with."""
    cls.__init__ = _recording(cls.__init__)

    def __init_subclass__(subclass, **kwargs):
        super(cls, subclass).__init_subclass__(**kwargs)
        if '__init__' in subclass.__dict__:
            subclass.__init__ = _recording(subclass.__init__)

    cls.__init_subclass__ = classmethod(__init_subclass__)
    return cls
