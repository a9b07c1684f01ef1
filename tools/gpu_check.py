"""Checks a machine with one NVIDIA GPU and no internet in one go (run through tools/gpu_check.sh):
the CUDA tests, the render bench, CUDA-GL interop read back through EGL, a 512^3 mesh export and
the training bench, each in its own process with a timeout, then one summary table.

It uses the python3 and torch already there; a step whose packages are missing is skipped and
says which (tools/fetch_gpu_wheels.sh fetches them elsewhere, `--wheels DIR` installs them).
Without a CUDA GPU it says so in one line and exits 0.
"""
import argparse
import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_S = 460          # under 8 minutes with the start-up around it
PACKAGES = {'OpenGL': 'PyOpenGL', 'skimage': 'scikit-image', 'lazy_loader': 'lazy-loader',
            'cuda.bindings': 'cuda-bindings'}
WHEELS_HINT = '(pass --wheels DIR, see tools/fetch_gpu_wheels.sh)'
EGL_HINT = ('apt-get download libegl1 libglvnd0 libopengl0, dpkg -x each into DIR, then run with '
            'LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu')


# ------------------------------------------------------------------------------ what is missing

def missing_packages(modules, find_spec=importlib.util.find_spec):
    """Distribution names of the `modules` that cannot be imported here."""
    missing = []
    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):     # a missing parent package, or a broken one
            found = False
        if not found:
            missing.append(PACKAGES.get(module, module))
    return missing


def skip_reason(missing):
    return f'missing {", ".join(missing)} {WHEELS_HINT}' if missing else None


def egl_problem(load=ctypes.CDLL):
    """Why PyOpenGL's EGL platform cannot give desktop GL here (it needs libEGL and libOpenGL),
    or None."""
    missing = []
    for names in (('libEGL.so.1', 'libEGL.so'), ('libOpenGL.so.0', 'libOpenGL.so')):
        for name in names:
            try:
                load(name)
                break
            except OSError:
                pass
        else:
            missing.append(names[0])
    return f'missing {", ".join(missing)} (optional: {EGL_HINT})' if missing else None


# ------------------------------------------------------------------------------------- the table

def format_table(rows):
    """rows: dicts with step, result ('PASS', 'FAIL' or 'skipped: why'), seconds, peak_gb, detail.
    One line per step; a skip's reason stays on its line."""
    head = ('step', 'result', 'time s', 'peak GB', 'detail')
    cells = [head] + [(r['step'], r['result'],
                       '-' if r.get('seconds') is None else f'{r["seconds"]:.1f}',
                       '-' if r.get('peak_gb') is None else f'{r["peak_gb"]:.1f}',
                       r.get('detail') or '') for r in rows]
    width = [max(len(c[i]) for c in cells if not c[1].startswith('skipped') or i != 1)
             for i in range(4)]
    lines = []
    for c in cells:
        if c[1].startswith('skipped'):
            lines.append(f'{c[0]:<{width[0]}}  {c[1]}')
        else:
            lines.append(f'{c[0]:<{width[0]}}  {c[1]:<{width[1]}}  {c[2]:>{width[2]}}  '
                         f'{c[3]:>{width[3]}}  {c[4]}'.rstrip())
    passed = sum(r['result'] == 'PASS' for r in rows)
    failed = sum(r['result'] == 'FAIL' for r in rows)
    lines.append(f'{passed} passed, {failed} failed, {len(rows) - passed - failed} skipped')
    return '\n'.join(lines)


# --------------------------------------------------------------------------------- running steps

class GpuMemorySampler:
    """Peak memory used on GPU 0 while a step runs, from nvidia-smi (the steps are other
    processes, so torch's own counters cannot see them); None without nvidia-smi."""

    def __init__(self):
        self.peak_mib = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(['nvidia-smi', '--query-gpu=memory.used',
                                      '--format=csv,noheader,nounits', '-i', '0'],
                                     capture_output=True, text=True, timeout=5).stdout
                self.peak_mib = max(self.peak_mib or 0, float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            self._stop.wait(0.5)

    def __enter__(self):
        if shutil.which('nvidia-smi'):
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def peak_gb(self):
        return None if self.peak_mib is None else self.peak_mib / 1024


def gpu_name():
    """GPU 0 as nvidia-smi names it, '' when it lists none (asked there, not through a CUDA
    context in this process, whose memory would count in every step's peak)."""
    try:
        proc = subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total',
                               '--format=csv,noheader', '-i', '0'], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return proc.stdout.strip() if proc.returncode == 0 else ''


def run_step(name, cmd, timeout, log_dir, env=None):
    """Runs cmd; returns (returncode or None on timeout, output text, seconds, peak GB)."""
    log = os.path.join(log_dir, re.sub(r'\W+', '_', name).strip('_') + '.log')
    start = time.perf_counter()
    with GpuMemorySampler() as memory, open(log, 'w') as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:      # its children too (data loader workers, ...)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    with open(log) as f:
        return code, f.read(), time.perf_counter() - start, memory.peak_gb


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:120] if lines else '(no output)'


# ----------------------------------------------------------------------------------- the checks

def cuda_tests():
    """pytest node ids of the tests marked `needs CUDA`."""
    ids = []
    tests = os.path.join(REPO, 'tests')
    for name in sorted(os.listdir(tests)):
        if not (name.startswith('test_') and name.endswith('.py')):
            continue
        with open(os.path.join(tests, name)) as f:
            text = f.read()
        for match in re.finditer(r"reason='needs CUDA'\)\s*\ndef (test_\w+)", text):
            ids.append(f'tests/{name}::{match.group(1)}')
    return ids


def check_cuda_tests(code, out):
    summary = last_line(out)
    ok = code == 0 and 'passed' in summary and 'skipped' not in summary
    return ok, summary


def check_render_bench(path):
    def check(code, out):
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as e:
            return False, f'no JSON ({e.__class__.__name__}): {last_line(out)}'
        return code == 0, (f'new latent {result["new_latent_frame_ms"]:.1f} ms, camera only '
                           f'{result["camera_only_frame_ms"]:.1f} ms, preview '
                           f'{result["preview_fps"]:.0f} FPS')
    return check


def check_interop(code, out):
    line = next((line for line in out.splitlines() if line.startswith('interop:')), None)
    return code == 0 and line is not None and 'equal' in line, line or last_line(out)


def check_mesh(path):
    def check(code, out):
        size = os.path.getsize(path) if os.path.exists(path) else 0
        wrote = next((line for line in out.splitlines() if line.startswith('wrote')), '')
        if code != 0 or size == 0 or '(0 vertices' in wrote or 'vertices' not in wrote:
            return False, f'no mesh ({size} bytes): {last_line(out)}'
        return True, f'{wrote.split("(", 1)[1].rstrip(")")}, {size / 2**20:.1f} MiB'
    return check


def check_dataset(path):
    def check(code, out):
        ok = code == 0 and os.path.exists(path) and os.path.getsize(path) > 0
        return ok, last_line(out)
    return check


def check_training(code, out):
    first = next((line for line in out.splitlines() if line.startswith('first tick')), None)
    if first is None:
        return False, f'no first-tick line: {last_line(out)}'
    cells = first.split()
    steady = next((line.split() for line in out.splitlines() if line.startswith('steady')), None)
    detail = f'first tick {cells[-3]} s, peak {cells[-2]} GB'
    detail += f', {steady[-3]} s/kimg' if steady else ''
    failed = [line.split('  ')[0] for line in out.splitlines() if 'failed:' in line]
    if failed:
        detail += f'; failed: {", ".join(failed)}'
    return code == 0, detail


def steps(tmp, python):
    """(name, modules needed, timeout s, command, check, extra problem or None, step it needs)."""
    def dataset(resolution, images):
        path = os.path.join(tmp, f'data{resolution}.zip')
        name = f'dataset {resolution}x{resolution} ({images} images)'
        return path, resolution, (name, [], 60, [
            python, '-m', 'eg3d_runtime.dataset_tool', '--source', 'procedural', '--dest', path,
            '--resolution', str(resolution), '--max-images', str(images)], check_dataset(path),
            None, None)

    def training(cfg, data, gamma, nobench, timeout):
        path, resolution, (needs, *_) = data
        setting = '--nobench True' if nobench else 'cudnn.benchmark'
        return (f'train {cfg} {resolution}, {setting}', [], timeout,
                [python, '-m', 'eg3d_runtime.train', '--cfg', cfg, '--data', path, '--gpus', '1',
                 '--batch', '8', '--gamma', gamma, '--metrics', 'none', '--workers', '2',
                 '--nobench', str(nobench), '--bench', '4'], check_training, None, needs)

    # 64 images at 512: four per worker on 16 cores, so the printed images/s is the builder's
    # throughput (issue 14: >= 10 images/s), not its start-up (8 images gave 8.6 images/s).
    data128, data512 = dataset(128, 16), dataset(512, 64)
    return [
        ('CUDA tests', ['pytest'], 120,
         [python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *cuda_tests()],
         check_cuda_tests, None, None),
        ('render bench (ffhq, cuda)', [], 120,
         [python, '-m', 'eg3d_runtime.bench', '--device', 'cuda', '--reps', '5',
          '--preview-frames', '60', '--json', os.path.join(tmp, 'bench.json')],
         check_render_bench(os.path.join(tmp, 'bench.json')), None, None),
        ('interop read-back (EGL)', ['OpenGL', 'cuda.bindings'], 60,
         [python, os.path.abspath(__file__), '--interop'], check_interop, egl_problem(), None),
        ('mesh export 512^3 glb (cuda)',
         ['trimesh', 'skimage', 'lazy_loader', 'scipy', 'tqdm'], 120,
         [python, 'shapes_export.py', '--network', 'checkpoints/demo.pkl', '--resolution', '512',
          '--format', 'glb', '--colors', '--device', 'cuda', '--outdir',
          os.path.join(tmp, 'shapes'), '--bench'],
         check_mesh(os.path.join(tmp, 'shapes', 'seed0000.glb')), None, None),
        data128[2],
        training('shapenet', data128, '0.3', False, 150),
        training('shapenet', data128, '0.3', True, 90),
        data512[2],
        training('ffhq', data512, '1', True, 120),
        training('ffhq', data512, '1', False, 150),
    ]


def run_all(budget, python=sys.executable):
    rows = []
    deadline = time.monotonic() + budget
    with tempfile.TemporaryDirectory(prefix='gpu_check-') as tmp:
        log_dir = tempfile.mkdtemp(prefix='gpu_check-logs-')
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (REPO, os.environ.get('PYTHONPATH')) if p), PYOPENGL_PLATFORM='egl')
        results = {}
        for name, modules, timeout, cmd, check, problem, needs in steps(tmp, python):
            reason = skip_reason(missing_packages(modules)) or problem
            left = deadline - time.monotonic()
            if reason is None and needs and results.get(needs) != 'PASS':
                reason = f'{needs} did not pass'
            if reason is None and left < 10:
                reason = f'out of the {budget:g} s budget'
            if reason:
                rows.append({'step': name, 'result': f'skipped: {reason}'})
            else:
                print(f'gpu_check: {name} ...', flush=True)
                code, out, seconds, peak = run_step(name, cmd, min(timeout, left), log_dir, env)
                ok, detail = check(code, out)
                if code is None and left < timeout:
                    ok, detail = False, f'stopped: the {budget:g} s budget ran out; {detail}'
                elif code is None:
                    ok, detail = False, f'timed out after {timeout} s; {detail}'
                rows.append({'step': name, 'result': 'PASS' if ok else 'FAIL',
                             'seconds': seconds, 'peak_gb': peak, 'detail': detail})
            results[name] = rows[-1]['result']
    return rows, log_dir


# ----------------------------------------------------------------------------- interop (a child)

def egl_context():
    """A pbuffer context for desktop GL on the default EGL display, else on the first EGL
    device (the NVIDIA driver with no display)."""
    from OpenGL import EGL
    from OpenGL.error import Error
    major, minor = EGL.EGLint(), EGL.EGLint()

    def initialized(display):   # PyOpenGL raises where EGL returns false
        try:
            return bool(display) and bool(EGL.eglInitialize(display, ctypes.pointer(major),
                                                            ctypes.pointer(minor)))
        except Error:
            return False

    display = EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)
    if not initialized(display):
        from OpenGL.EGL.EXT.device_base import eglQueryDevicesEXT
        from OpenGL.EGL.EXT.platform_base import eglGetPlatformDisplayEXT
        from OpenGL.EGL.EXT.platform_device import EGL_PLATFORM_DEVICE_EXT
        devices, count = (EGL.EGLDeviceEXT * 4)(), EGL.EGLint()
        if not eglQueryDevicesEXT(4, devices, ctypes.pointer(count)) or count.value < 1:
            raise RuntimeError('EGL finds no display and no device (is the NVIDIA EGL driver, '
                               'libEGL_nvidia.so.0, there? containers need graphics in '
                               'NVIDIA_DRIVER_CAPABILITIES)')
        display = eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT, devices[0], None)
        if not initialized(display):
            raise RuntimeError('eglInitialize failed on the first EGL device')
    attribs = [EGL.EGL_SURFACE_TYPE, EGL.EGL_PBUFFER_BIT, EGL.EGL_RENDERABLE_TYPE,
               EGL.EGL_OPENGL_BIT, EGL.EGL_RED_SIZE, 8, EGL.EGL_GREEN_SIZE, 8, EGL.EGL_BLUE_SIZE,
               8, EGL.EGL_NONE]
    config, found = EGL.EGLConfig(), EGL.EGLint()
    if not EGL.eglChooseConfig(display, (EGL.EGLint * len(attribs))(*attribs),
                               ctypes.pointer(config), 1, ctypes.pointer(found)) or found.value < 1:
        raise RuntimeError('no EGL config with a pbuffer for desktop GL')
    size = [EGL.EGL_WIDTH, 16, EGL.EGL_HEIGHT, 16, EGL.EGL_NONE]
    surface = EGL.eglCreatePbufferSurface(display, config, (EGL.EGLint * len(size))(*size))
    EGL.eglBindAPI(EGL.EGL_OPENGL_API)
    context = EGL.eglCreateContext(display, config, EGL.EGL_NO_CONTEXT, None)
    if not surface or not context or not EGL.eglMakeCurrent(display, surface, surface, context):
        raise RuntimeError('could not make an EGL pbuffer context current')
    return f'EGL {major.value}.{minor.value}'


def read_texture(texture):
    """The texture's RGB pixels as uint8 [H, W, 3], row 0 first (as uploaded)."""
    import numpy as np
    from OpenGL import GL
    GL.glFinish()
    GL.glBindTexture(GL.GL_TEXTURE_2D, texture.id)
    GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
    data = GL.glGetTexImage(GL.GL_TEXTURE_2D, 0, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return np.frombuffer(data, np.uint8).reshape(texture.height, texture.width, 3)


def _ms_per_frame(fn, frames=50):
    import torch
    from OpenGL import GL
    fn()
    GL.glFinish()
    start = time.perf_counter()
    for _ in range(frames):
        fn()
        torch.cuda.synchronize()
        GL.glFinish()
    return (time.perf_counter() - start) / frames * 1000


def interop_check():
    """Texture.update with a CUDA uint8 image must take the interop path and read back equal."""
    import numpy as np
    import torch
    from OpenGL import GL
    sys.path.insert(0, REPO)
    from gui_utils.gl_texture import Texture
    egl = egl_context()
    image = torch.randint(0, 256, (512, 512, 3), dtype=torch.uint8, device='cuda')
    texture = Texture()
    texture.update(image)
    if texture.path != 'CUDA-GL interop':
        print(f'interop: not used ({texture.path}: {texture.path_reason})')
        return 1
    torch.cuda.synchronize()
    back = read_texture(texture)
    if not np.array_equal(back, image.cpu().numpy()):
        print(f'interop: read-back differs from the tensor in {np.sum(back != image.cpu().numpy())}'
              ' values')
        return 1
    interop_ms = _ms_per_frame(lambda: texture.update(image))
    upload_ms = _ms_per_frame(lambda: texture._upload(image))
    print(f'interop: read-back equal ({egl}, {GL.glGetString(GL.GL_RENDERER).decode()}), '
          f'{interop_ms:.2f} ms/frame vs pixel buffer {upload_ms:.2f} ms at 512x512')
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog='tools/gpu_check.sh', description=__doc__.split('\n\n')[0])
    p.add_argument('--budget', type=float, default=BUDGET_S, help='seconds for all the steps')
    p.add_argument('--interop', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.interop:
        return interop_check()
    listed = gpu_name() if shutil.which('nvidia-smi') else ''
    if not listed:
        print('gpu_check: no GPU to check (no nvidia-smi, or it lists no GPU); exiting.')
        return 0
    try:
        import torch
    except ImportError as e:
        print(f'gpu_check: {sys.executable} cannot import torch ({e})', file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print(f'gpu_check: no GPU to check (nvidia-smi lists {listed}, torch {torch.__version__} '
              'sees no CUDA device); exiting.')
        return 0
    print(f'gpu_check: {listed}, torch {torch.__version__}, python {sys.version.split()[0]}',
          flush=True)
    rows, log_dir = run_all(args.budget)
    print('\n' + format_table(rows) + f'\nlogs: {log_dir}')
    return 1 if any(r['result'] == 'FAIL' for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
