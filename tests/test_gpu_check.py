"""tools/gpu_check.sh on a machine without a GPU, and the CPU-side pieces of tools/gpu_check.py:
the summary table, what is missing, the CUDA test list, reading the training bench's table."""
import importlib.util
import os
import subprocess
import sys
from types import SimpleNamespace

from eg3d_runtime.training.bench import FIRST_TICK, Table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location('gpu_check', os.path.join(REPO, 'tools',
                                                                         'gpu_check.py'))
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def gpu_check_sh(**env):
    proc = subprocess.run(['bash', 'tools/gpu_check.sh'], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHON=sys.executable,
                                   **env), timeout=120)
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr
    assert proc.stdout.count('\n') == 1 and proc.stdout.startswith('gpu_check: no GPU to check (')
    return proc.stdout


def test_without_a_gpu_one_line_and_exit_0(tmp_path):
    gpu_check_sh()
    # nvidia-smi lists a GPU that torch does not see (CUDA_VISIBLE_DEVICES='')
    fake = tmp_path / 'nvidia-smi'
    fake.write_text('#!/bin/sh\necho "NVIDIA H200, 143771 MiB"\n')
    fake.chmod(0o755)
    path = f'{tmp_path}{os.pathsep}{os.environ["PATH"]}'
    out = gpu_check_sh(PATH=path)
    assert 'nvidia-smi lists NVIDIA H200, 143771 MiB, torch ' in out
    assert out.endswith(' sees no CUDA device); exiting.\n')
    fake.write_text('#!/bin/sh\necho "No devices were found"\nexit 6\n')
    assert gpu_check_sh(PATH=path) == ('gpu_check: no GPU to check (no nvidia-smi, or it lists '
                                       'no GPU); exiting.\n')


def test_missing_packages_both_answers():
    present = {'trimesh': False, 'skimage': False, 'scipy': True, 'OpenGL': True}

    def find_spec(name):
        if name == 'cuda.bindings':
            raise ModuleNotFoundError("No module named 'cuda'")
        return object() if present[name] else None

    missing = gpu_check.missing_packages(['trimesh', 'skimage', 'scipy'], find_spec)
    assert missing == ['trimesh', 'scikit-image']
    assert gpu_check.skip_reason(missing) == ('missing trimesh, scikit-image (pass --wheels DIR, see '
                                              'tools/fetch_gpu_wheels.sh)')
    assert gpu_check.missing_packages(['OpenGL', 'cuda.bindings'], find_spec) == ['cuda-bindings']
    assert gpu_check.missing_packages(['OpenGL', 'scipy'], find_spec) == []
    assert gpu_check.skip_reason([]) is None


def test_missing_libegl_is_a_reason_with_the_remedy():
    def without(*absent):
        def load(name):
            if name.split('.so')[0] in absent:
                raise OSError(f'{name}: cannot open shared object file')
        return load
    assert gpu_check.egl_problem(without('libEGL')).startswith(
        'missing libEGL.so.1 (optional: apt-get download libegl1 libglvnd0 libopengl0')
    assert gpu_check.egl_problem(without('libEGL', 'libOpenGL')).startswith(
        'missing libEGL.so.1, libOpenGL.so.0 (optional:')
    assert gpu_check.egl_problem(without()) is None


def test_summary_table_one_line_per_step():
    rows = [{'step': 'CUDA tests', 'result': 'PASS', 'seconds': 12.34, 'peak_gb': 1.5,
             'detail': '2 passed in 10.1s'},
            {'step': 'mesh export 512^3 glb (cuda)',
             'result': 'skipped: missing trimesh, scikit-image (pass --wheels DIR)'},
            {'step': 'train ffhq 512', 'result': 'FAIL', 'seconds': 99.0, 'peak_gb': None,
             'detail': 'no first-tick line'}]
    lines = gpu_check.format_table(rows).splitlines()
    assert len(lines) == 1 + len(rows) + 1
    assert lines[0].split() == ['step', 'result', 'time', 's', 'peak', 'GB', 'detail']
    assert lines[1].split() == ['CUDA', 'tests', 'PASS', '12.3', '1.5', '2', 'passed', 'in',
                                '10.1s']
    assert lines[2].endswith('  skipped: missing trimesh, scikit-image (pass --wheels DIR)')
    assert lines[3].split()[3:6] == ['FAIL', '99.0', '-']
    assert lines[-1] == '1 passed, 1 failed, 1 skipped'
    assert lines[1].index('PASS') == lines[3].index('FAIL')


def test_cuda_tests_are_the_ones_marked_needs_cuda():
    ids = gpu_check.cuda_tests()
    assert 'tests/test_augment.py::test_cuda_follows_input_device' in ids
    assert 'tests/test_fast_paths.py::test_cuda_graph_frames_match_eager' in ids


def test_training_check_reads_the_bench_table():
    table = Table(['header'], cuda=True)
    mem = SimpleNamespace(peak=36 * 2**30, reserved=40 * 2**30)
    table.add(FIRST_TICK, 49.1, [mem])
    table.add('steady sec/kimg (median of steps 2-4)', 29.5)
    table.fail('_save_fakes (grid 15x8)', 20.9, 'CUDA out of memory. Tried')
    ok, detail = gpu_check.check_training(0, 'Training for 4 steps\n' + table.text())
    assert ok and detail == ('first tick 49.10 s, peak 36.00 GB, 29.50 s/kimg; failed: '
                             '_save_fakes (grid 15x8)')
    assert gpu_check.check_training(0, 'Training for 4 steps\n')[0] is False


def test_egl_pbuffer_context_reads_a_texture_back(tmp_path):
    """The interop step's EGL context and read-back, with the CPU upload path (Mesa here)."""
    script = tmp_path / 'egl.py'
    script.write_text(
        'import importlib.util, sys\n'
        'import numpy as np\n'
        f'spec = importlib.util.spec_from_file_location("g", {spec.origin!r})\n'
        'g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)\n'
        'print(g.egl_context())\n'
        'from gui_utils.gl_texture import Texture\n'
        'image = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)\n'
        'texture = Texture(); texture.update(image)\n'
        'print(np.array_equal(g.read_texture(texture), image), texture.path)\n')
    env = dict(os.environ, PYOPENGL_PLATFORM='egl', PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[0].startswith('EGL 1.')
    assert proc.stdout.splitlines()[1] == 'True pixel-buffer upload'


def test_each_step_runs_on_its_own(monkeypatch, tmp_path):
    """A timeout is a FAIL that stops neither the steps after it nor the table; a step that needs
    a failed one and a step with a missing package are skipped with the reason."""
    def python(code):
        return [sys.executable, '-c', code]

    def printed(code, out):
        return code == 0 and out.strip() == 'ok', out.strip()

    monkeypatch.setattr(gpu_check, 'steps', lambda tmp, python_: [
        ('slow', [], 1, python('import time; time.sleep(30)'), printed, None, None),
        ('after slow', [], 30, python('print("ok")'), printed, None, 'slow'),
        ('no package', ['no_such_module_xyz'], 30, python('print("ok")'), printed, None, None),
        ('fine', [], 30, python('print("ok")'), printed, None, None),
        ('wrong answer', [], 30, python('print("not ok")'), printed, None, None)])
    monkeypatch.setattr('tempfile.tempdir', str(tmp_path))
    rows, log_dir = gpu_check.run_all(budget=60)
    assert [(r['step'], r['result']) for r in rows] == [
        ('slow', 'FAIL'), ('after slow', 'skipped: slow did not pass'),
        ('no package', 'skipped: missing no_such_module_xyz (pass --wheels DIR, see '
                       'tools/fetch_gpu_wheels.sh)'),
        ('fine', 'PASS'), ('wrong answer', 'FAIL')]
    assert rows[0]['detail'].startswith('timed out after 1 s;') and rows[0]['seconds'] < 10
    assert sorted(os.listdir(log_dir)) == ['fine.log', 'slow.log', 'wrong_answer.log']
