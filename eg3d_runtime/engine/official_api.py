"""The official generator API over an engine session, for scripts written against the official
code: `G.mapping`, `G.synthesis`, `G.planes`, `G.sample_mixed` and `G(z, c)` with the official
signatures and outputs, fast whenever no gradient is needed. `faithful=True`, autograd and
training mode take TriPlaneGenerator's reference path.

`load_network_pkl` returns its generators as FastTriPlaneGenerator (PanoHead's as
FastPanoHeadGenerator): the same object, parameters, state dict and saved form as the reference
class (`serving` changes only the class, which adds methods and no state), with one Session of
its own on the device its weights are on (`G.session`). Copies and pickles leave the session
behind; a copy makes its own."""
import threading

import torch

from ..networks.panohead import PanoHeadGenerator
from ..networks.triplane import TriPlaneGenerator
from .session import Session, device_of
from .values import RenderSettings

# Keyword arguments of the official calls that the session serves; others (e.g. a backbone
# option) take the reference path.
SERVED_KWARGS = frozenset({'force_fp32', 'fused_modconv', 'noise_mode', 'update_emas'})
_MAKING_SESSION = threading.Lock()


class FastTriPlaneGenerator(TriPlaneGenerator):
    """A TriPlaneGenerator whose official API renders through `self.session`."""

    family_kwargs = frozenset()     # synthesis arguments of a family beyond the official ones

    @classmethod
    def serving(cls, G, options=None):
        """G itself, from now on a FastTriPlaneGenerator (a FastPanoHeadGenerator for a
        PanoHeadGenerator); `options` (EngineOptions) for its session."""
        fast = _FAST_CLASSES.get(type(G))
        if fast is not None:
            G.__class__ = fast
        elif not isinstance(G, cls):
            raise TypeError(f'cannot serve a {type(G).__name__} (a TriPlaneGenerator is needed)')
        if options is not None:
            G.session = Session(G, options=options)
        return G

    @property
    def session(self):
        """This generator's Session on the device its weights are on, made on first use (and
        again, with the same precision and options, after the generator moved)."""
        with _MAKING_SESSION:
            session = self.__dict__.get('_session')
            device = device_of(self)
            if session is None or session.device != device:
                session = Session(self, device) if session is None else \
                    Session(self, device, session.precision, session.options)
                self.__dict__['_session'] = session.held_by_network()
            return session

    @session.setter
    def session(self, session):
        """Give G another session (of G): G keeps it from now on (held_by_network)."""
        if session.G is not self:
            raise ValueError('the session renders another network')
        self.__dict__['_session'] = session.held_by_network()

    def __getstate__(self):
        """Copies and pickles leave the session (caches, graphs, a lock) behind."""
        state = super().__getstate__()
        state.pop('_session', None)
        return state

    def _served(self, ws, synthesis_kwargs, faithful):
        """Whether the session serves this call: inference only (no autograd, eval mode)."""
        if faithful or self.training or set(synthesis_kwargs) - SERVED_KWARGS:
            return False
        if torch.is_grad_enabled():
            if ws is not None and ws.requires_grad:
                return False
            if any(p.requires_grad for p in self.parameters()):
                return False
        return True

    def _session_planes(self, ws, noise_mode, force_fp32, cache_backbone, use_cached_backbone):
        """The session's planes, or those kept by `cache_backbone` (the official attribute)."""
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
            planes = planes.view(len(planes), 3, -1, *planes.shape[-2:])
        else:
            planes = self.session.planes(ws, noise_mode, force_fp32)
        if cache_backbone:
            self._last_planes = planes
        return planes

    def planes(self, ws, cache_backbone=False, use_cached_backbone=False, faithful=False,
               **synthesis_kwargs):
        if not self._served(ws, synthesis_kwargs, faithful):
            return super().planes(ws, cache_backbone=cache_backbone,
                                  use_cached_backbone=use_cached_backbone, **synthesis_kwargs)
        return self._session_planes(ws, synthesis_kwargs.get('noise_mode', 'random'),
                                    synthesis_kwargs.get('force_fp32', False), cache_backbone,
                                    use_cached_backbone)

    def synthesis(self, ws, c, neural_rendering_resolution=None, noise_mode='random',
                  cache_backbone=False, use_cached_backbone=False, deterministic=False,
                  update_emas=False, rendering_overrides=None, superresolution=True,
                  faithful=False, **synthesis_kwargs):
        """TriPlaneGenerator.synthesis through the session (same outputs to ~1e-6 in float32),
        or the reference path with `faithful=True`, autograd or training mode."""
        family = {k: synthesis_kwargs.pop(k) for k in self.family_kwargs if k in synthesis_kwargs}
        if not self._served(ws, synthesis_kwargs, faithful):
            return super().synthesis(
                ws, c, neural_rendering_resolution, noise_mode, cache_backbone,
                use_cached_backbone, deterministic, update_emas, rendering_overrides,
                superresolution, **synthesis_kwargs, **family)
        force_fp32 = synthesis_kwargs.get('force_fp32', False)
        planes = self._session_planes(ws, noise_mode, force_fp32, cache_backbone,
                                      use_cached_backbone)
        nrr = neural_rendering_resolution
        settings = RenderSettings(nrr=None if nrr is None else int(nrr), noise_mode=noise_mode,
                                  deterministic=deterministic, superresolution=superresolution,
                                  force_fp32=force_fp32, overrides=rendering_overrides or (),
                                  background=family.get('background', True))
        return self.session.frame(ws, c, settings, planes=planes,
                                  ws_bcg=family.get('ws_bcg')).as_dict()

    def sample_mixed(self, coordinates, directions, ws, noise_mode='random', faithful=False,
                     **synthesis_kwargs):
        if not self._served(ws, synthesis_kwargs, faithful) or coordinates.requires_grad:
            return super().sample_mixed(coordinates, directions, ws, noise_mode=noise_mode,
                                        **synthesis_kwargs)
        density = self.session.density(coordinates, ws, noise_mode,
                                       synthesis_kwargs.get('force_fp32', False))
        return {'rgb': density.features, 'sigma': density.sigma}


class FastPanoHeadGenerator(FastTriPlaneGenerator, PanoHeadGenerator):
    """A PanoHeadGenerator whose official API renders through `self.session` (its synthesis
    also takes PanoHead's `ws_bcg` and this project's `background`); `G(z, c)` is PanoHead's
    forward, with the learned camera offset."""

    family_kwargs = frozenset({'ws_bcg', 'background'})


# The reference class -> the class serving it through a session.
_FAST_CLASSES = {TriPlaneGenerator: FastTriPlaneGenerator, PanoHeadGenerator: FastPanoHeadGenerator}
