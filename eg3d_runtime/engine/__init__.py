"""The engine: one Session per (network, device) owns fast inference (caches, precision, CUDA
graphs) and is how every caller renders: tri-planes of a ws, a Frame for (ws, camera,
RenderSettings), densities at points. FastTriPlaneGenerator (FastPanoHeadGenerator for PanoHead
networks) serves the official generator API through a session (what `load_network_pkl`
returns)."""
from .official_api import FastPanoHeadGenerator, FastTriPlaneGenerator
from .session import Session
from .values import Density, EngineOptions, Frame, Precision, RenderSettings

__all__ = ['Session', 'RenderSettings', 'Frame', 'Precision', 'Density', 'EngineOptions',
           'FastTriPlaneGenerator', 'FastPanoHeadGenerator']
