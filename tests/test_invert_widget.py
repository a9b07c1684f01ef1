"""Invert image in the viewer: a dropped picture, its camera from the dataset.json beside it,
progress with a live preview, the result as the current network and latent, compare, Cancel."""
import json

import numpy as np
import torch
from PIL import Image

from eg3d_runtime import views
from eg3d_runtime.views import render_seed
from eg3d_runtime.pickles import load_generator

from conftest import REPO, frames

DEMO = str((REPO / 'checkpoints' / 'demo.pkl').resolve())


def picture_in_dataset(folder, with_label=True):
    """A picture of the demo network in a dataset folder, labelled in its dataset.json."""
    G = load_generator(DEMO)
    (folder / '00000').mkdir(parents=True)
    picture = folder / '00000' / 'img00000000.png'
    image = render_seed(G.session, 11, 0.25, -0.05, 0.7).image
    Image.fromarray(views.image_to_uint8(image).numpy(), 'RGB').save(picture)
    if with_label:
        label = views.camera(G, 0.25, -0.05)[0].tolist()
        (folder / 'dataset.json').write_text(json.dumps(
            {'labels': [['00000/img00000000.png', label]]}))
    return picture


def open_demo(viz):
    viz.pickle_widget.load(DEMO)
    assert viz.settle(timeout=300)


def test_dropped_picture_is_inverted_and_opened(viewer, tmp_path):
    viz = viewer
    open_demo(viz)
    picture = picture_in_dataset(tmp_path / 'faces')
    viz.window._drop_paths.append(str(picture))          # what GLFW's drop callback delivers
    frames(viz, 2)
    widget = viz.invert_widget
    assert widget.path == str(picture) and viz.pickle_widget.pkl == DEMO
    assert widget.camera_source() == 'dataset.json label'
    widget.directory = str(tmp_path / 'inversions')
    widget.num_steps, widget.pti_steps = 6, 2
    assert widget.start()
    stages, previews = set(), 0
    while widget.running:
        frames(viz, 1)                                    # the window keeps drawing
        if widget.progress:
            stages.add(widget.progress[0])
        previews += widget._preview is not None
    frames(viz, 2)
    out = tmp_path / 'inversions' / '00001'
    assert widget.message == f'saved {out}'
    assert {'w', 'tuning'} <= stages and previews > 0
    assert viz.pickle_widget.pkl == str(out / 'inverted.pkl')
    assert viz.render_args().ws_file == str(out / 'w.npy')
    assert viz.settle(timeout=300)
    assert torch.equal(viz.viewport.result.ws, torch.from_numpy(np.load(out / 'w.npy')))
    widget.compare_with_original()
    assert viz.comparing
    assert [p.pkl for p in viz.compare_widget.panels] == [DEMO, str(out / 'inverted.pkl')]


def test_cancel_writes_nothing(viewer, tmp_path):
    viz = viewer
    open_demo(viz)
    widget = viz.invert_widget
    widget.choose(picture_in_dataset(tmp_path / 'faces', with_label=False))
    assert widget.camera_source() == 'estimated'
    widget.directory = str(tmp_path / 'inversions')
    assert widget.start()
    while widget.running and (widget.progress is None or widget.progress[1] < 2):
        frames(viz, 1)
    assert widget.progress[0] == 'camera + w'
    widget.cancel()
    widget.join(timeout=120)
    frames(viz, 1)
    assert widget.message == 'inversion cancelled (no files written)'
    assert not (tmp_path / 'inversions').exists()


def test_the_browser_lists_pictures(tmp_path):
    import time

    from viz.invert_widget import PICTURE_SUFFIXES
    from viz.pickle_widget import FolderLister
    for name in ('a.pkl', 'b.PNG', 'c.jpg', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    lister = FolderLister(PICTURE_SUFFIXES)
    try:
        deadline = time.monotonic() + 5
        while (listing := lister.listing(tmp_path)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listing.files == (tmp_path / 'b.PNG', tmp_path / 'c.jpg')
    finally:
        lister.close()
