"""Datasets: procedural renders, dataset_tool, ImageFolderDataset, mirrored cameras, sampler."""
import json
import math
import multiprocessing
import os
import pickle
import re
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from eg3d_runtime import cameras, procedural
from eg3d_runtime.commands import dataset_tool
from eg3d_runtime.training.dataset import (DatasetError, ImageFolderDataset, InfiniteSampler,
                                           mirror_camera_label)

RES = 32
COUNT = 5


@pytest.fixture(scope='module')
def procedural_zip(tmp_path_factory):
    dest = tmp_path_factory.mktemp('procedural') / 'toys.zip'
    rc = dataset_tool.main(['--source', 'procedural', '--dest', str(dest),
                            '--resolution', f'{RES}x{RES}', '--max-images', str(COUNT)])
    assert rc == 0
    return dest


def _camera(yaw, pitch):
    pose = cameras.look_at_orbit(math.pi / 2 + yaw, math.pi / 2 + pitch, (0, 0, 0), 2.7)
    return cameras.camera_vector(pose, cameras.fov_to_intrinsics(18.837))[0].numpy()


def _write_png_folder(folder, count, size=(24, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f'sub/pic{i}.png'
        (folder / 'sub').mkdir(exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / name)
        names.append(name)
    return names


def _label_file(folder, entries):
    (folder / 'dataset.json').write_text(json.dumps({'labels': entries}))


def test_procedural_zip_round_trip(procedural_zip):
    with zipfile.ZipFile(procedural_zip) as z:
        infos = z.infolist()
        meta = json.loads(z.read('dataset.json'))
        png = z.read('00000/img00000000.png')
    names = [f'00000/img{i:08d}.png' for i in range(COUNT)]
    assert sorted(i.filename for i in infos) == sorted(names + ['dataset.json'])
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
    assert len(png) > RES * RES * 3          # compress_level 0: the pixels are stored raw
    assert [e[0] for e in meta['labels']] == names
    assert all(len(e[1]) == 25 and all(isinstance(x, float) for x in e[1]) for e in meta['labels'])

    ds = ImageFolderDataset(procedural_zip, resolution=RES, use_labels=True)
    assert (ds.name, len(ds), ds.resolution, ds.num_channels) == ('toys', COUNT, RES, 3)
    assert ds.image_shape == [3, RES, RES] and ds.label_shape == [25] and ds.has_labels
    for i in range(COUNT):
        obj, label = procedural.sample(i)
        image, got = ds[i]
        assert image.dtype == np.uint8 and got.dtype == np.float32
        np.testing.assert_array_equal(got, label)
        np.testing.assert_array_equal(image, procedural.render_label(obj, label, RES)
                                      .transpose(2, 0, 1))
    std = ds.get_label_std()
    assert std.shape == (25,) and std.dtype == np.float32 and std[3] > 0
    assert ds.training_set_kwargs == dict(
        class_name='training.dataset.ImageFolderDataset', path=str(procedural_zip),
        use_labels=True, max_size=None, xflip=False, resolution=RES, random_seed=0)
    assert len(ImageFolderDataset(procedural_zip, max_size=3, random_seed=1)) == 3
    assert ImageFolderDataset(procedural_zip).label_dim == 0


def test_dataset_pickles_and_loads_in_workers(procedural_zip):
    ds = ImageFolderDataset(procedural_zip, use_labels=True)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[2][0], ds[2][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=COUNT, num_workers=1)
    images, labels = next(iter(loader))
    assert images.shape == (COUNT, 3, RES, RES) and labels.shape == (COUNT, 25)
    np.testing.assert_array_equal(labels[1].numpy(), ds.get_label(1))


def test_procedural_images_are_white_framed_figures():
    for index in range(4):
        obj, label = procedural.sample(index, seed=7)
        image = procedural.render_label(obj, label, 32)
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (border == 255).all()                       # whole figure in view
        assert (image.min(axis=-1) < 200).mean() > 0.1     # and clearly there
        points = np.random.default_rng(index).normal(size=(2000, 3))
        points *= procedural.BOUND_RADIUS / np.linalg.norm(points, axis=1, keepdims=True)
        assert procedural.sdf(obj, points).min() > 0       # inside the bounding sphere
    a, b = procedural.generate(16, 2, seed=3), procedural.generate(16, 2, seed=3)
    for (na, ia, la), (nb, ib, lb) in zip(a, b):
        assert na == nb
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)



def test_procedural_workers_render_the_serial_images(tmp_path, capsys):
    serial = list(procedural.generate(16, 5, seed=2))
    parallel = list(procedural.generate(16, 5, seed=2, workers=2))
    for index, ((na, ia, la), (nb, ib, lb)) in enumerate(zip(serial, parallel, strict=True)):
        obj, label = procedural.sample(index, seed=2)
        assert na == nb == f'toy{index:08d}.png'
        np.testing.assert_array_equal(ia, procedural.render_label(obj, label, 16))
        np.testing.assert_array_equal(ib, ia)
        np.testing.assert_array_equal(lb, la)
    packed = []
    for workers in ('1', '2'):
        dest = tmp_path / f'workers{workers}.zip'
        assert dataset_tool.main(['--source', 'procedural', '--dest', str(dest), '--resolution',
                                  '16', '--max-images', '5', '--workers', workers]) == 0
        out = capsys.readouterr().out.strip()
        assert re.fullmatch(rf'{re.escape(str(dest))}: 5 images in [0-9.]+ s '
                            r'\([0-9.]+ images/s\)', out), out
        with zipfile.ZipFile(dest) as z:
            packed.append({name: z.read(name) for name in z.namelist()})
    assert packed[0] == packed[1]


def test_procedural_pool_shuts_down_on_errors_and_early_close():
    before = set(multiprocessing.active_children())
    results = procedural._in_order(math.sqrt, iter([4.0, -1.0, 9.0]), 2)
    assert next(results) == (4.0, 2.0)
    with pytest.raises(ValueError):         # raised in a worker, re-raised here
        next(results)
    images = procedural.generate(16, 50, workers=2)
    next(images)
    images.close()                          # the queued renders are cancelled
    assert set(multiprocessing.active_children()) <= before

def test_mirror_camera_label_mirrors_renders():
    c = _camera(0.7, -0.2)
    m = mirror_camera_label(c)
    pose = m[:16].reshape(4, 4)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
    assert np.linalg.det(pose[:3, :3]) > 0
    np.testing.assert_allclose(m, _camera(-0.7, -0.2), atol=1e-6)    # the opposite yaw
    np.testing.assert_array_equal(mirror_camera_label(m), c)
    off_centre = c.copy()
    off_centre[18] = 0.4
    assert mirror_camera_label(off_centre)[18] == pytest.approx(0.6)

    checked_symmetric = False
    for index in range(6):
        obj, label = procedural.sample(index)
        image = procedural.render_label(obj, label, 32)
        mirrored = procedural.render_label(procedural.mirror_object(obj),
                                           mirror_camera_label(label), 32)
        assert np.abs(mirrored.astype(int) - image[:, ::-1]).max() <= 1
        if len(obj.arms) != 1:      # no arm or both: the figure is symmetric in x
            same_object = procedural.render_label(obj, mirror_camera_label(label), 32)
            assert np.abs(same_object.astype(int) - image[:, ::-1]).max() <= 1
            checked_symmetric = True
        else:                       # one arm: the unmirrored figure does not match
            wrong = procedural.render_label(obj, mirror_camera_label(label), 32)
            assert np.abs(wrong.astype(int) - image[:, ::-1]).max() > 50
    assert checked_symmetric


def test_xflip_flips_pixels_and_mirrors_labels(procedural_zip):
    ds = ImageFolderDataset(procedural_zip, use_labels=True, xflip=True)
    assert len(ds) == 2 * COUNT
    for i in range(COUNT):
        image, label = ds[i]
        flipped, flipped_label = ds[COUNT + i]
        np.testing.assert_array_equal(flipped, image[:, :, ::-1])
        np.testing.assert_array_equal(flipped_label, mirror_camera_label(label))
        np.testing.assert_array_equal(ds.get_label(COUNT + i), flipped_label)


def test_mirror_option_adds_mirrored_copies(tmp_path, procedural_zip):
    dest = tmp_path / 'mirrored'
    assert dataset_tool.main(['--source', str(procedural_zip), '--dest', str(dest),
                              '--max-images', '3', '--mirror']) == 0
    meta = json.loads((dest / 'dataset.json').read_text())
    names = [e[0] for e in meta['labels']]
    assert names == [n for i in range(3) for n in (f'00000/img{i:08d}.png',
                                                   f'00000/img{i:08d}_mirror.png')]
    labels = dict((n, np.array(v, dtype=np.float32)) for n, v in meta['labels'])
    source = ImageFolderDataset(procedural_zip, use_labels=True)
    out = ImageFolderDataset(dest, use_labels=True)
    assert len(out) == 6
    for i in range(3):
        image = np.array(PIL.Image.open(dest / f'00000/img{i:08d}.png'))
        mirrored = np.array(PIL.Image.open(dest / f'00000/img{i:08d}_mirror.png'))
        np.testing.assert_array_equal(mirrored, image[:, ::-1])
        np.testing.assert_array_equal(image.transpose(2, 0, 1), source[i][0])
        np.testing.assert_array_equal(labels[f'00000/img{i:08d}_mirror.png'],
                                      mirror_camera_label(source.get_label(i)))


@pytest.mark.parametrize('entry, problem', [
    (None, 'no label for image sub/pic1.png'),
    ([0.0] * 24, 'label of sub/pic1.png is not a list of 25 numbers'),
    ([0.0] * 24 + ['x'], 'label of sub/pic1.png is not a list of 25 numbers'),
    ([0.0] * 24 + [float('nan')], 'label of sub/pic1.png has a non-finite number'),
])
def test_bad_labels_name_the_file_and_leave_no_dest(tmp_path, capsys, entry, problem):
    src = tmp_path / 'src'
    names = _write_png_folder(src, 3, size=(16, 16))
    entries = [[n, [0.5] * 25] for n in names]
    if entry is None:
        del entries[1]
    else:
        entries[1][1] = entry
    _label_file(src, entries)
    label_path = os.path.join(src, 'dataset.json')
    for dest in (tmp_path / 'out.zip', tmp_path / 'outdir'):
        assert dataset_tool.main(['--source', str(src), '--dest', str(dest)]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f'error: {label_path}: {problem}'
        assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ['src']
    with pytest.raises(DatasetError, match=f'{label_path}: {problem}'):
        ImageFolderDataset(src)


def test_bad_image_mid_run_leaves_no_dest(tmp_path, capsys):
    src = tmp_path / 'src'
    _write_png_folder(src, 3, size=(16, 16))
    (src / 'sub' / 'pic2.png').write_bytes(b'not a png')
    dest = tmp_path / 'out.zip'
    assert dataset_tool.main(['--source', str(src), '--dest', str(dest)]) == 1
    assert 'pic2.png: not an image' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['src']


def test_directory_source_with_center_crop(tmp_path):
    src = tmp_path / 'src'
    names = _write_png_folder(src, 3)
    _label_file(src, [[n, [float(i)] * 25] for i, n in enumerate(names)])
    dest = tmp_path / 'cropped.zip'
    assert dataset_tool.main(['--source', str(src), '--dest', str(dest), '--resolution', '8',
                              '--transform', 'center-crop']) == 0
    ds = ImageFolderDataset(dest, resolution=8, use_labels=True)
    assert len(ds) == 3 and ds.image_shape == [3, 8, 8]
    np.testing.assert_array_equal(ds.get_label(2), np.full(25, 2, np.float32))
    first = np.array(PIL.Image.open(src / names[0]))[:, 4:20]
    expected = np.array(PIL.Image.fromarray(first).resize((8, 8), PIL.Image.LANCZOS))
    np.testing.assert_array_equal(ds[0][0], expected.transpose(2, 0, 1))
    folder = ImageFolderDataset(src, use_labels=True)         # a plain folder reads too
    assert folder.image_shape == [3, 16, 24] and folder.name == 'src'


def test_resolution_errors(tmp_path, procedural_zip, capsys):
    with pytest.raises(DatasetError, match=r'toys.zip:00000/img00000000.png: image is 32x32, '
                                           'expected 64x64'):
        ImageFolderDataset(procedural_zip, resolution=64)
    src = tmp_path / 'src'
    _write_png_folder(src, 2)
    with pytest.raises(DatasetError, match='no labels, but use_labels=True'):
        ImageFolderDataset(src, use_labels=True)
    dest = tmp_path / 'out.zip'
    assert dataset_tool.main(['--source', str(src), '--dest', str(dest)]) == 1
    assert 'must be square with a power-of-two size, got 24x16' in capsys.readouterr().err
    assert not dest.exists()      # the command line's refusals: tests/test_bad_input.py


def test_infinite_sampler():
    data = list(range(10))

    def take(n, **kwargs):
        it = iter(InfiniteSampler(data, **kwargs))
        return [next(it) for _ in range(n)]

    stream = take(60, seed=3)
    assert stream == take(60, seed=3) and stream != take(60, seed=4)
    assert set(stream[:30]) == set(data)
    ranks = [take(20, seed=3, rank=r, num_replicas=3) for r in range(3)]
    assert [ranks[p % 3][p // 3] for p in range(60)] == stream
    assert take(25, shuffle=False) == (data * 3)[:25]
    with pytest.raises(ValueError):
        InfiniteSampler(data, rank=2, num_replicas=2)
