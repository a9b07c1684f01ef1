"""What an inversion writes, all of it or none: the pivot, the camera, the reconstruction, the
tuned network as an official snapshot and its orbit video."""
import json
import os

import numpy as np
import torch
from PIL import Image

from .. import views
from ..engine import RenderSettings, Session
from ..files import Outputs
from ..pickles import save_network_pkl
from ..video.files import write_video
from ..video.renderer import Renderer
from .optimise import SYNTHESIS
from .targets import InversionError


@torch.no_grad()
def reconstruction(session, ws, c):
    """The picture of the pivot at camera c, rendered by an engine session of the tuned
    network, as H x W x 3 uint8 (what proj.png holds)."""
    frame = session.frame(ws, c, RenderSettings(**SYNTHESIS))
    return views.image_to_uint8(frame.image).cpu().numpy()


def output_names(video_frames=0):
    """The files an inversion writes."""
    return ['w.npy', 'camera.json', 'proj.png', 'inverted.pkl'] + \
        (['orbit.mp4'] if video_frames > 0 else [])


def write_outputs(outdir, networks, result, video_frames=0, video_fps=30, force=False,
                  session=None):
    """Write DIR/w.npy, camera.json, proj.png, inverted.pkl (the tuned G as both G and G_ema,
    beside the original's D) and, for video_frames > 0, orbit.mp4, all of them or none
    (files.Outputs): an earlier inversion in DIR is replaced, whole, only with `force`, else
    OutputExists. A pivot that is not finite (the optimisation diverged) writes nothing.
    `session`: the engine session of result.G to render with (default: a new one, 'auto'
    precision). Returns the paths written."""
    if not torch.isfinite(result.ws).all():
        raise InversionError('the inversion diverged (its latent is not finite); nothing was '
                             'written')
    session = session or Session(result.G)
    outputs = Outputs(outdir, output_names(video_frames), force)
    with outputs:
        np.save(outputs.path('w.npy'), result.ws.detach().cpu().numpy().astype(np.float32))
        outputs.path('camera.json').write_text(json.dumps(result.c[0].tolist()) + '\n')
        Image.fromarray(reconstruction(session, result.ws, result.c), 'RGB').save(
            outputs.path('proj.png'))
        save_network_pkl(outputs.path('inverted.pkl'), {
            'training_set_kwargs': networks.get('training_set_kwargs'), 'G': result.G,
            'D': networks.get('D'), 'G_ema': result.G,
            'augment_pipe': networks.get('augment_pipe')})
        if video_frames > 0:       # gen_videos' default orbit
            with torch.no_grad():
                frames = Renderer(session).orbit_ws(result.ws, video_frames)
                write_video(outputs.path('orbit.mp4'), frames, video_frames, 'mp4', video_fps)
    return [os.path.join(outdir, name) for name in outputs.names]


def make_outdir(outdir):
    """Create the output folder of an inversion (the viewer's and the server's), or say in one
    line why not."""
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise InversionError(
            f'{outdir}: cannot create the output directory ({e.strerror})') from None
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise InversionError(f'{outdir}: the output directory is not writable')
