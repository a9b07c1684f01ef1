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


# ---- Outputs: a command's results all together or not at all ------------------------------------

from eg3d_runtime.files import OutputExists, Outputs  # noqa: E402


def _write(outputs, names):
    for name in names:
        outputs.path(name).write_text(name)


def test_outputs_appear_together_in_a_new_folder(tmp_path):
    folder = tmp_path / 'out' / 'deeper'
    with Outputs(folder, ['a.png', 'b.png']) as outputs:
        _write(outputs, ['a.png', 'b.png'])
        assert not folder.exists()                  # nothing visible until the block ends
    assert sorted(os.listdir(folder)) == ['a.png', 'b.png']
    assert os.listdir(tmp_path / 'out') == ['deeper']


@pytest.mark.parametrize('error', [OSError('disk full'), KeyboardInterrupt()])
@pytest.mark.parametrize('existed', [False, True])
def test_a_failed_block_leaves_nothing(tmp_path, error, existed):
    folder = tmp_path / 'out'
    if existed:
        folder.mkdir()
        (folder / 'mine.txt').write_text('keep')
    with pytest.raises(type(error)):
        with Outputs(folder, ['a.png', 'b.png']) as outputs:
            _write(outputs, ['a.png'])
            raise error
    assert os.listdir(tmp_path) == (['out'] if existed else [])
    assert not existed or os.listdir(folder) == ['mine.txt']


def test_an_earlier_result_is_refused_without_force_and_replaced_whole_with_it(tmp_path):
    folder = tmp_path / 'out'
    with Outputs(folder, ['w.npy', 'proj.png', 'orbit.mp4', 'shapes']) as outputs:
        _write(outputs, ['w.npy', 'proj.png', 'orbit.mp4', 'shapes/0.ply'])
    (folder / 'notes.txt').write_text('mine')
    again = Outputs(folder, ['w.npy', 'proj.png', 'orbit.mp4', 'shapes'])
    with pytest.raises(OutputExists, match=r'w\.npy \(and 3 more of the outputs\): exists from '
                                           r'an earlier run \(add --force to replace it\)'):
        again.check()
    with pytest.raises(OutputExists):
        with again:
            pass
    assert (folder / 'w.npy').read_text() == 'w.npy'
    with Outputs(folder, ['w.npy', 'proj.png', 'orbit.mp4', 'shapes'], force=True) as outputs:
        outputs.path('w.npy').write_text('new')
        outputs.path('proj.png').write_text('new')
        outputs.path('shapes/1.ply').write_text('new')
    # orbit.mp4 of the earlier result is gone with it; what is not an output is untouched
    assert sorted(os.listdir(folder)) == ['notes.txt', 'proj.png', 'shapes', 'w.npy']
    assert os.listdir(folder / 'shapes') == ['1.ply'] and (folder / 'w.npy').read_text() == 'new'


def test_outputs_refuse_a_file_as_folder_and_undeclared_names(tmp_path):
    (tmp_path / 'afile').write_text('')
    with pytest.raises(OutputExists, match='afile: is a file, not a folder'):
        Outputs(tmp_path / 'afile', ['a.png']).check()
    with pytest.raises(ValueError):
        with Outputs(tmp_path / 'out', ['a.png']) as outputs:
            outputs.path('b.png')
    assert os.listdir(tmp_path) == ['afile']


def test_a_failed_write_names_the_output_not_its_staging_file(tmp_path):
    folder = tmp_path / 'out'
    with pytest.raises(OSError) as failed:                 # as a full disk or `ulimit -f` ends
        with Outputs(folder, ['a.png', 'b.pkl']) as outputs:
            outputs.path('a.png').write_text('a')
            with open(outputs.path('b.pkl'), 'wb'):
                raise OSError(27, 'File too large')        # file.write names no file
    assert failed.value.filename == str(folder / 'b.pkl')
    with pytest.raises(OSError) as failed:
        with Outputs(folder, ['a.png']) as outputs:
            open(outputs.path('a.png').parent / 'sub' / 'x')   # an error that names its file
    assert failed.value.filename == str(folder / 'sub' / 'x')
    assert not folder.exists()
