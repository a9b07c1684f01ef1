import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get('EG3D_FIXTURES', REPO.parent / 'shared' / 'fixtures'))
FIXTURE_PKL = FIXTURES / 'ffhq-micro.pkl'


def relative_rms(actual, expected):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.sqrt(np.mean((actual - expected) ** 2)) / np.sqrt(np.mean(expected ** 2)))


@pytest.fixture(scope='session')
def fixture_pkl():
    if not FIXTURE_PKL.exists():
        pytest.skip(f'reference fixture not found at {FIXTURE_PKL} (set EG3D_FIXTURES)')
    return FIXTURE_PKL


@pytest.fixture(scope='session')
def reference(fixture_pkl):
    """The official outputs for the fixture: arrays and the case list."""
    meta = json.loads((FIXTURES / 'ffhq-micro-ref.json').read_text())
    return np.load(FIXTURES / 'ffhq-micro-ref.npz'), meta


@pytest.fixture(scope='session')
def fixture_networks(fixture_pkl):
    from eg3d_runtime import load_network_pkl
    return load_network_pkl(fixture_pkl)


@pytest.fixture(scope='session')
def fixture_G(fixture_networks):
    return fixture_networks['G_ema']
