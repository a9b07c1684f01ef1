"""Long work a client starts on the render server: a mesh export of the frame on screen and the
inversion of an uploaded photo. Each runs on a thread of its own (frames keep coming, as in the
local viewer), reports 'progress' messages of its job, stops on 'cancel', and ends with one reply
carrying the request's id: the file or folder it wrote, 'cancelled', or one error line."""
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from eg3d_runtime.files import next_capture_path

from . import codec, values
from .protocol import ProtocolError
from .roots import PathRefused

log = logging.getLogger('eg3d.serve')
PICTURE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')
PREVIEW_SECONDS = 0.5


class Cancelled(Exception):
    pass


class Jobs:
    """One session's jobs. `send(type, blob, **fields)` writes to the client; `last_frame()`
    gives (id, image, result) of the newest full-quality view frame; `locate(text)` resolves a
    network argument under the roots."""

    def __init__(self, send, roots, device, last_frame, locate):
        self._send, self.roots, self.device = send, roots, device
        self._last_frame, self._locate = last_frame, locate
        self._cancels = {}

    def cancel(self, job):
        event = self._cancels.get(job)
        if event is not None:
            event.set()

    def cancel_all(self):
        for event in list(self._cancels.values()):
            event.set()

    def _folder(self, text, default):
        return self.roots.resolve(text or os.path.join(os.getcwd(), default))

    def _run(self, name, id_, reply, work):
        """work(cancel, progress) -> reply fields and blob, on its own thread."""
        cancel = self._cancels[id_] = threading.Event()
        sent = [0.0]

        def progress(blob=b'', **fields):
            now = time.monotonic()
            if blob or now - sent[0] > 0.1:
                sent[0] = now
                self._send('progress', blob, job=id_, **fields)

        def run():
            try:
                fields, blob = work(cancel, progress)
                self._send(reply, blob, id=id_, **fields)
            except Cancelled:
                self._send(reply, id=id_, cancelled=True)
            except (ValueError, OSError, PathRefused) as e:
                self._send(reply, id=id_, error=str(e).splitlines()[0])
            except Exception as e:  # the session goes on
                log.exception('%s', name)
                self._send(reply, id=id_, error=f'{name} failed: {type(e).__name__}: {e}')
            finally:
                self._cancels.pop(id_, None)
        threading.Thread(target=run, daemon=True, name=f'{name}-{id_}').start()

    # ---- mesh export --------------------------------------------------------------------------
    def start_mesh(self, message):
        """The shape of the newest view frame's latent: saved under the roots (`to` 'server'; a
        folder it serves, default eg3d-exports in its working folder), or sent back as the
        reply's blob (`to` 'laptop')."""
        from eg3d_runtime.shapes import ExportCancelled, ShapeOptions, export_shape
        id_, frame = message.get('id', int), message.get('frame', int)
        options = values.from_json(ShapeOptions, message.get('options', dict), 'options')
        to = message.get('to', str, 'laptop')
        if to not in ('laptop', 'server'):
            raise ProtocolError(f"mesh: to {to!r}; 'laptop' or 'server'")
        directory = message.get('directory', str, '')
        last = self._last_frame()

        def work(cancel, progress):
            options.check()
            if last is None or last[0] != frame or last[2].ws is None:
                raise ValueError('that frame is no longer on the server; wait for the next one')
            folder = self._folder(directory, 'eg3d-exports') if to == 'server' else None
            with tempfile.TemporaryDirectory(prefix='eg3d-mesh-') as scratch:
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                path = next_capture_path(folder or Path(scratch), f'.{options.format}')
                try:
                    done = export_shape(last[2].network.session, last[2].ws, path, options,
                                        cancel=cancel, progress=lambda f, stage: progress(
                                            fraction=float(f), stage=str(stage)))
                except ExportCancelled:
                    raise Cancelled() from None
                blob = b'' if folder is not None else Path(done.path).read_bytes()
                return {'path': str(done.path) if folder else None, 'name': Path(done.path).name,
                        'vertices': int(done.vertices),
                        'seconds': float(sum(done.seconds.values()))}, blob
        self._run('mesh export', id_, 'mesh_done', work)

    # ---- inverting a photo --------------------------------------------------------------------
    def start_invert(self, message):
        """Invert the uploaded picture (the blob) in a network of the server; the outputs
        (w.npy, camera.json, proj.png, inverted.pkl) go to a new numbered folder under the
        roots (default eg3d-inversions in its working folder). Progress carries the stage, step,
        loss and now and then a JPEG preview."""
        from eg3d_runtime import views
        from eg3d_runtime.inversion.invert import Settings, invert, load_inputs
        from eg3d_runtime.inversion.outputs import make_outdir, write_outputs
        from eg3d_runtime.inversion.targets import InversionError, check_camera
        id_ = message.get('id', int)
        pkl = message.get('pkl', str)
        name = Path(message.get('name', str)).name
        if Path(name).suffix.lower() not in PICTURE_SUFFIXES or not message.blob:
            raise ProtocolError(f'invert: a picture ({", ".join(PICTURE_SUFFIXES)}) must come '
                                f'with the request, not {name!r}')
        camera = message.fields.get('camera')
        settings = Settings(num_steps=max(message.get('num_steps', int, Settings.num_steps), 0),
                            pti_steps=max(message.get('pti_steps', int, Settings.pti_steps), 0))
        directory = message.get('directory', str, '')
        picture = message.blob

        def work(cancel, progress):
            parent = self._folder(directory, 'eg3d-inversions')
            c = None if camera is None else check_camera(camera, 'the camera from the viewer')
            preview_at = [0.0]

            def on_step(step):
                if cancel.is_set():
                    raise Cancelled()
                blob = b''
                now = time.monotonic()
                if now - preview_at[0] > PREVIEW_SECONDS:
                    preview_at[0] = now
                    blob = codec.encode_image(views.image_to_uint8(step.image).cpu().numpy())
                progress(blob, fraction=step.step / max(step.total, 1), stage=str(step.stage),
                         step=int(step.step), total=int(step.total), loss=float(step.loss))
            with tempfile.TemporaryDirectory(prefix='eg3d-invert-') as scratch:
                path = Path(scratch) / name
                path.write_bytes(picture)
                try:
                    networks, target = load_inputs(self._locate(pkl), str(path), self.device)
                    result = invert(networks['G_ema'], target, c, settings, on_step=on_step)
                    make_outdir(parent)
                    outdir = next_capture_path(parent, '')
                    make_outdir(outdir)
                    write_outputs(outdir, networks, result)
                except InversionError as e:
                    raise ValueError(str(e)) from None
            return {'outdir': str(outdir)}, b''
        self._run('inversion', id_, 'invert_done', work)
