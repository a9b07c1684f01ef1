"""The generate command as a user runs it."""
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import REPO


def run_generate(*args):
    return subprocess.run([sys.executable, '-m', 'eg3d_runtime.generate', *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_writes_images_and_depth(tmp_path, fixture_pkl):
    r = run_generate('--network', fixture_pkl, '--seeds', '0-1', '--nrr', 32, '--yaw', 0.3,
                     '--device', 'cpu', '--outdir', tmp_path)
    assert r.returncode == 0, r.stderr
    for seed in (0, 1):
        img = np.asarray(Image.open(tmp_path / f'seed{seed:04d}.png'))
        depth = np.asarray(Image.open(tmp_path / f'seed{seed:04d}_depth.png'))
        assert img.shape == (512, 512, 3) and img.std() > 0
        assert depth.shape == (32, 32) and depth.max() == 255
    a = np.asarray(Image.open(tmp_path / 'seed0000.png'), dtype=float)
    b = np.asarray(Image.open(tmp_path / 'seed0001.png'), dtype=float)
    assert np.abs(a - b).mean() > 1
    assert 'precision: backbone fp32, super-resolution fp32 (auto, cpu)' in r.stdout


def test_precision_option_is_obeyed_and_logged(tmp_path):
    demo = REPO / 'checkpoints' / 'demo.pkl'
    images = {}
    for name in ('fp32', 'bf16'):
        r = run_generate('--network', demo, '--device', 'cpu', '--precision', name,
                         '--outdir', tmp_path / name)
        assert r.returncode == 0, r.stderr
        assert f'precision: backbone {name}, super-resolution {name} ({name}, cpu)' in r.stdout
        images[name] = np.asarray(Image.open(tmp_path / name / 'seed0000.png'), dtype=float)
    assert 0 < np.abs(images['fp32'] - images['bf16']).mean() < 2
