"""The commands as a user starts them: every old path and console script still runs, and a
command line is checked before torch is loaded (so a bad option is refused at once)."""
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from test_layers import COMMANDS, OLD_PATHS

REPO = Path(__file__).resolve().parents[1]
COMMAND_NAMES = sorted(new.rsplit('.', 1)[1] for new in OLD_PATHS.values())


def run(*args, **kwargs):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.parametrize('old', sorted(OLD_PATHS))
def test_every_old_path_runs_its_command(old):
    new = OLD_PATHS[old]
    start = [sys.executable, 'shapes_export.py'] if old == 'shapes_export' else \
        [sys.executable, '-m', old]
    before = run(*start, '--help')
    after = run(sys.executable, '-m', new, '--help')
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout and 'usage:' in before.stdout


def test_every_console_script_runs_a_command_module():
    scripts = {e.name: e for e in metadata.entry_points(group='console_scripts')
               if e.name.startswith('eg3d-') and e.name != 'eg3d-visualizer'}
    assert len(scripts) == 7, sorted(scripts)
    for name, entry in scripts.items():
        assert entry.module.startswith(COMMANDS + '.') and entry.attr == 'main', entry
        script = Path(sys.executable).parent / name
        result = run(str(script), '--help')
        assert result.returncode == 0 and 'usage:' in result.stdout, (name, result.stderr)


@pytest.mark.parametrize('name', COMMAND_NAMES)
def test_a_command_line_is_checked_before_torch_loads(name):
    code = (f'import sys\nfrom {COMMANDS} import {name}\n{name}.build_parser()\n'
            "print('torch' in sys.modules)")
    result = run(sys.executable, '-c', code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'


def test_a_bad_option_is_refused_without_torch():
    result = run(sys.executable, '-X', 'importtime', '-m', 'eg3d_runtime.generate', '--network',
                 'checkpoints/demo.pkl', '--psi', 'nan')
    assert result.returncode == 2
    assert 'error: --psi nan: must be a finite number' in result.stderr
    assert not any(line.rstrip().endswith('| torch') for line in result.stderr.splitlines())
