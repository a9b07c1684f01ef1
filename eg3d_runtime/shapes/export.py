"""Entry points of shape export (command line and viewer): one field per latent, the file
written in the chosen format, progress, cancellation and stage timings."""
import os
import time

import numpy as np
import torch

from ..views import seed_ws
from .fields import TriplaneField
from .formats import _output_file, write_mrc
from .mesh import build_mesh
from .options import ExportCancelled, ExportResult, ShapeExportError, ShapeOptions, check_memory
from .sampling import official_sections, sample_volume


class _Tracker:
    """Progress in [0, 1] over weighted stages, cancellation checks and stage timings."""

    def __init__(self, progress=None, cancel=None):
        self.progress = progress
        self.cancelled = getattr(cancel, 'is_set', cancel) or (lambda: False)
        self.seconds = {}
        self.span = (0.0, 0.0)
        self.name = None
        self.started = None

    def stage(self, name, start, stop):
        self.finish()
        self.name, self.span, self.started = name, (start, stop), time.perf_counter()
        self.update(0.0)

    def update(self, fraction):
        if self.cancelled():
            raise ExportCancelled('export cancelled')
        if self.progress is not None:
            start, stop = self.span
            self.progress(start + (stop - start) * min(max(fraction, 0.0), 1.0), self.name)

    def finish(self):
        if self.name is not None:
            self.seconds[self.name] = time.perf_counter() - self.started
            self.name = None


def _export(field, file, options, tracker, result):
    if options.format == 'mrc':
        tracker.stage('density', 0.05, 1.0)
        write_mrc(file, official_sections(field, options.resolution, options.trim_voxels,
                                          tracker.update), (options.resolution,) * 3)
    elif options.format == 'npy':
        tracker.stage('density', 0.05, 0.95)
        volume, _ = sample_volume(field, options.resolution, options.trim_voxels, full=True,
                                  report=tracker.update)
        tracker.stage('write', 0.95, 1.0)
        np.save(file, volume)
    else:
        mesh = build_mesh(field, options, tracker, result.path)
        result.vertices, result.faces = len(mesh.vertices), len(mesh.faces)
        tracker.stage('write', 0.97, 1.0)
        # glTF viewers shade flat without normals; PLY/OBJ readers compute smooth ones themselves.
        extra = {'include_normals': True} if options.format == 'glb' else {}
        mesh.export(file, file_type=options.format, **extra)
    tracker.update(1.0)
    tracker.finish()


def _run(make_field, path, options, progress, cancel):
    options = options or ShapeOptions()
    options.check()
    check_memory(options)
    tracker, result = _Tracker(progress, cancel), ExportResult(os.fspath(path))
    try:
        with torch.no_grad(), _output_file(path) as file:
            tracker.stage('planes', 0.0, 0.05)
            _export(make_field(), file, options, tracker, result)
    except MemoryError:
        raise ShapeExportError(f'{result.path}: out of memory at resolution {options.resolution} '
                               f'(use a smaller resolution)') from None
    result.seconds = tracker.seconds
    return result


def export_field(field, path, options=None, progress=None, cancel=None):
    """Export a density field to `path` in options.format (see ShapeOptions).
    `progress(fraction, stage)` is called often with fraction in [0, 1]; `cancel` (a
    threading.Event or a callable) is checked as often and makes the export raise ExportCancelled
    without creating the file. User-fixable problems raise ShapeExportError (one line)."""
    return _run(lambda: field, path, options, progress, cancel)


def export_shape(session, seed_or_ws, path, options=None, progress=None, cancel=None):
    """Export the shape of a seed (int; z and mapping as `generate`, with options.psi/cutoff) or
    of ws [1, num_ws, w_dim] of the network of an engine session; the tri-planes are computed
    once. Meshes and .npy volumes of a network that crops (PanoHead) end at its crop box.
    Blocking and GUI-free: a viewer runs it in a worker thread with a progress callback and a
    cancel Event."""
    def make_field():
        ws = seed_or_ws
        if isinstance(seed_or_ws, int):
            options_ = options or ShapeOptions()
            ws = seed_ws(session.G, seed_or_ws, options_.psi, options_.cutoff)
        # The official volume is as the official script writes it: not cropped.
        return TriplaneField(session, ws, crop=(options or ShapeOptions()).format != 'mrc')
    return _run(make_field, path, options, progress, cancel)
