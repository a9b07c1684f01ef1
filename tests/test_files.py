"""The one atomic file writer (eg3d_runtime.files): what a failure leaves behind."""
import os
import stat

import pytest

from eg3d_runtime.files import atomic_open, atomic_write


def test_written_file_has_the_usual_mode(tmp_path):
    atomic_write(tmp_path / 'sub' / 'a.json', '{"é": 1}')
    path = tmp_path / 'sub' / 'a.json'
    assert path.read_text(encoding='utf-8') == '{"é": 1}'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path / 'sub') == ['a.json']


@pytest.mark.parametrize('error', [OSError('disk full'), KeyboardInterrupt()])
def test_failure_keeps_the_previous_file_and_no_temporary(tmp_path, error):
    path = tmp_path / 'a.bin'
    path.write_bytes(b'previous')
    with pytest.raises(type(error)):
        with atomic_open(path) as f:
            f.write(b'half')
            raise error
    assert path.read_bytes() == b'previous' and os.listdir(tmp_path) == ['a.bin']


def test_part_file_is_kept_for_a_resume(tmp_path):
    path, part = tmp_path / 'w.pth', tmp_path / 'w.pth.part'
    with pytest.raises(OSError):
        with atomic_open(path, part=part) as f:
            f.write(b'abc')
            raise OSError('connection reset')
    assert part.read_bytes() == b'abc' and not path.exists()
    with atomic_open(path, 'ab', part=part) as f:
        f.write(b'def')
    assert path.read_bytes() == b'abcdef' and not part.exists()
