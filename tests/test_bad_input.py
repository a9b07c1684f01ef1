"""Bad input to every command, as a new user gives it (issue 33). Each case of the table runs
the real command in a subprocess and checks:

- the exit status (2: a bad command line, 1: refused or failed while working);
- stderr: no traceback, and exactly one `error:` line, its last line, matching the case (a
  bad command line prints nothing else at all);
- the disk: nothing left in the case's folder but what the case put there (or listed).

Most cases are refused by the command line's checks (eg3d_runtime.arguments) before torch is
imported, a fraction of a second each; the ones that must load a network use the small demo.
"""
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from eg3d_runtime import arguments

from conftest import REPO

DEMO = str(REPO / 'checkpoints' / 'demo.pkl')
VIEWER = ['visualizer.py']


@dataclass
class Case:
    name: str
    argv: list                # {tmp}: the case's folder, {demo}: the demo network
    status: int
    error: str                # regular expression the error line matches (after 'error: ')
    setup: object = None      # setup(tmp) makes the files the case starts from
    left: set = field(default_factory=set)   # files the command may leave (beyond setup's)
    slow: bool = False


CASES = [
    # ---- the viewer's command line -----------------------------------------------------------
    Case('viewer --yaw nan', [*VIEWER, '{demo}', '--headless', '--screenshot', '{tmp}/s.png',
                              '--yaw', 'nan'], 2, r'--yaw nan: must be a finite number$'),
    Case('viewer --pitch inf', [*VIEWER, '--headless', '--pitch', 'inf'], 2,
         r'--pitch inf: must be a finite number$'),
    Case('viewer --nrr 100000', [*VIEWER, '{demo}', '--headless', '--nrr', '100000'], 2,
         r'--nrr 100000: must be an integer from 1 to 4096$'),
    Case('viewer --nrr 0', [*VIEWER, '--headless', '--nrr', '0'], 2,
         r'--nrr 0: must be an integer from 1 to 4096$'),
    Case('viewer --fov 0', [*VIEWER, '--headless', '--fov', '0'], 2,
         r'--fov 0: must be a finite number above 0 and below 180$'),
    Case('viewer --psi nan', [*VIEWER, '--headless', '--psi', 'nan'], 2,
         r'--psi nan: must be a finite number from -1 to 2$'),
    Case('viewer --seed -1', [*VIEWER, '--headless', '--seed=-1'], 2,
         r'--seed -1: must be an integer from 0 to 4294967295$'),
    Case('viewer --frames 0', [*VIEWER, '--headless', '--frames', '0'], 2,
         r'--frames 0: must be an integer of at least 1$'),
    Case('viewer --width 10', [*VIEWER, '--headless', '--width', '10'], 2,
         r'--width 10: must be an integer from 64 to 16384$'),
    Case('viewer --height 1e9', [*VIEWER, '--headless', '--height', '1e9'], 2,
         r'--height 1e9: must be an integer from 64 to 16384$'),
    Case('viewer --render-type x', [*VIEWER, '--headless', '--render-type', 'x'], 2,
         r'--render-type x: must be one of image, image_raw, image_depth, normals$'),
    Case('viewer --device tpu', [*VIEWER, '--headless', '--device', 'tpu'], 2,
         r'--device tpu: must be one of cpu, cuda$'),
    Case('viewer missing pickle', [*VIEWER, '{tmp}/nope.pkl', '--headless'], 2,
         r'.*/nope\.pkl: no such file or run directory, and not a released network \(ffhq512-64, '),
    Case('viewer screenshot into a file', [*VIEWER, '--headless', '--screenshot',
                                           '{tmp}/f/s.png'], 2,
         r'--screenshot .*/f/s\.png: .*/f is a file, not a folder$',
         setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer screenshot not png', [*VIEWER, '--headless', '--screenshot', '{tmp}/s.jpg'], 2,
         r'--screenshot .*/s\.jpg: must end in \.png$'),
    Case('viewer screenshot exists', [*VIEWER, '--headless', '--screenshot', '{tmp}/s.png'], 2,
         r'--screenshot .*/s\.png: exists \(add --force to replace it\)$',
         setup=lambda tmp: (tmp / 's.png').write_text('')),
    Case('viewer --run is a file', [*VIEWER, '--headless', '--run', '{tmp}/f'], 2,
         r'--run .*/f: is a file, not a folder$', setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer --capture-dir is a file', [*VIEWER, '--headless', '--capture-dir', '{tmp}/f'],
         2, r'--capture-dir .*/f: is a file, not a folder$',
         setup=lambda tmp: (tmp / 'f').write_text('')),
    Case('viewer unknown option', [*VIEWER, '--headles'], 2,
         r'unrecognized arguments: --headles$'),
    Case('viewer truncated pickle', [*VIEWER, '{tmp}/t.pkl', '--headless', '--screenshot',
                                     '{tmp}/s.png', '--width', '320', '--height', '200'], 1,
         r'.*/t\.pkl: ', setup=lambda tmp: (tmp / 't.pkl').write_bytes(
             open(DEMO, 'rb').read()[:5000]), slow=True),
    Case('viewer pickle of a dict', [*VIEWER, '{tmp}/d.pkl', '--headless', '--screenshot',
                                     '{tmp}/s.png', '--width', '320', '--height', '200'], 1,
         r'.*/d\.pkl: ', setup=lambda tmp: __import__('pickle').dump({'a': 1},
                                                                       open(tmp / 'd.pkl', 'wb')),
         slow=True),
    Case('viewer offline released network', [*VIEWER, 'ffhq512-64', '--headless',
                                              '--screenshot', '{tmp}/s.png', '--width', '320',
                                              '--height', '200'], 1,
         r'ffhq512-64\.pkl: cannot download .*; offline, put the file at .*/ffhq512-64\.pkl$',
         slow=True),
]


def _files(folder):
    return {str(p.relative_to(folder)) for p in folder.rglob('*')}


@pytest.mark.parametrize('case', [pytest.param(c, id=c.name, marks=[pytest.mark.slow] * c.slow)
                                  for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, tmp_path, xvfb_display):
    tmp = tmp_path / 'case'
    tmp.mkdir()
    if case.setup:
        case.setup(tmp)
    before = _files(tmp)
    argv = [a.format(tmp=tmp, demo=DEMO) for a in case.argv]
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(tmp_path / 'config'),
               XDG_CACHE_HOME=str(tmp_path / 'cache'),
               EG3D_CHECKPOINT_DIR=str(tmp_path / 'checkpoints'),
               # offline: a download must fail at once, not wait for a network
               http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9')
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60 if case.status == 2 else 600)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == case.status, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith('error:')]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    if case.status == 2:
        assert len(lines) == 1, proc.stderr
    assert re.match(case.error, errors[0][len('error: '):]), errors[0]
    assert _files(tmp) - before == case.left, 'left behind'


# ---- the checks themselves, in this process ----------------------------------------------------

@pytest.mark.parametrize('kind, text, allowed', [
    (arguments.integer(1, 8), '9', 'must be an integer from 1 to 8'),
    (arguments.integer(0), '-1', 'must be an integer of at least 0'),
    (arguments.integer(), '1.5', 'must be an integer'),
    (arguments.number(0, lo_open=True), '0', 'must be a finite number above 0'),
    (arguments.number(0, 1), 'nan', 'must be a finite number from 0 to 1'),
    (arguments.number(hi=1), 'inf', 'must be a finite number of at most 1'),
    (arguments.seeds, '3-1', 'the range 3-1 runs backwards (write 1-3)'),
    (arguments.seeds, '0-99999999', 'at most 1000000 seeds'),
    (arguments.seeds, 'a', 'must be seeds like 0-3,7'),
    (arguments.grid, '0x2', 'must be a grid WxH of whole numbers of at least 1, like 4x2'),
    (arguments.boolean, 'maybe', 'must be True or False'),
    (arguments.device, 'gpu', 'must be cpu, cuda or cuda:N'),
])
def test_types_refuse_with_what_is_allowed(kind, text, allowed):
    with pytest.raises(arguments.Refusal) as refused:
        kind(text)
    assert str(refused.value) == f'{text}: {allowed}'


def test_types_accept_what_they_allow(tmp_path):
    assert arguments.seeds('0-2, 7') == [0, 1, 2, 7]
    assert arguments.grid(' 4x2 ') == (4, 2) and arguments.grid('3,1') == (3, 1)
    assert arguments.number(0, 1)('1') == 1.0 and arguments.integer(1)('+3') == 3
    assert arguments.boolean('True') and not arguments.boolean('off')
    assert arguments.output_dir(str(tmp_path / 'new' / 'deeper')) == str(tmp_path / 'new' /
                                                                          'deeper')
    assert arguments.device('CUDA:1') == 'cuda:1'


def test_argparse_messages_become_one_line():
    assert arguments.one_line("argument --format: invalid choice: 'x' (choose from 'mp4', "
                              "'webp')") == '--format x: must be one of mp4, webp'
    assert arguments.one_line('argument --psi: expected one argument') == '--psi: needs a value'
    assert arguments.one_line("argument --w-frames/--w_frames: invalid int value: 'x'") == \
        '--w-frames x: must be an integer'
    assert arguments.one_line('the following arguments are required:\n --network') == \
        'the following arguments are required: --network'
