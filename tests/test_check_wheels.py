"""tools/check_wheels.py: the markers of the real requirement files, wheel tag matching, and the
whole check against a package index served on 127.0.0.1 (no internet needed)."""
import importlib.util
import json
import re
from collections import Counter

import pytest
from packaging.requirements import Requirement

from conftest import REPO, QuietHandler, local_server

spec = importlib.util.spec_from_file_location('check_wheels', REPO / 'tools' / 'check_wheels.py')
check_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_wheels)

PYTHONS = re.search(r'^PYTHONS := (.+)$', (REPO / 'Makefile').read_text(), re.M).group(1).split()


def test_makefile_and_readme_name_the_same_pythons():
    assert PYTHONS == ['3.10', '3.11', '3.12', '3.13']
    assert 'CPython 3.10 to 3.13' in ' '.join((REPO / 'README.md').read_text().split())


@pytest.mark.parametrize('python', PYTHONS)
def test_every_project_has_exactly_one_pin_on_every_python(python):
    for path in ('requirements.txt', 'requirements-cuda.txt'):
        pins = [req for _, req in check_wheels.read_pins(REPO / path)]
        applying = [req for req in pins if check_wheels.applies(req, python)]
        counts = Counter(req.name.lower() for req in applying)
        assert set(counts) == {req.name.lower() for req in pins} and set(counts.values()) == {1}
        if path == 'requirements.txt':
            assert 'torch==2.13.0' in [str(req) for req in applying]


def test_markers_are_evaluated_for_the_target_python():
    old = Requirement('numpy==2.2.6; python_version < "3.11"')
    assert [check_wheels.applies(old, p) for p in PYTHONS] == [True, False, False, False]
    full = Requirement('x==1; python_full_version >= "3.12.0" and platform_system == "Linux"')
    assert [check_wheels.applies(full, p) for p in PYTHONS] == [False, False, True, True]
    assert check_wheels.applies(Requirement('x==1; sys_platform == "linux"'), '3.10')


@pytest.mark.parametrize('filename, requires, pin, expected', [
    ('av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl', None, 'av==18.1.0',
     [False, True, True, True]),                                   # abi3: 3.11 and later
    ('PyMCubes-0.1.6-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', None,
     'PyMCubes==0.1.6', [False, False, True, False]),
    ('trimesh-5.2.0-py3-none-any.whl', None, 'trimesh==5.2.0', [True] * 4),
    ('trimesh-5.2.0-py3-none-any.whl', '>=3.11', 'trimesh==5.2.0', [False, True, True, True]),
    ('trimesh-5.1.0-py3-none-any.whl', None, 'trimesh==5.2.0', [False] * 4),    # other version
    ('torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl', None, 'torch==2.13.0',
     [False, True, False, False]),                                 # local version label
    ('glfw-2.11.0-py2.py3-none-manylinux2014_x86_64.whl', None, 'glfw==2.11.0', [True] * 4),
    ('x-1.0-cp312-cp312-manylinux_2_34_x86_64.whl', None, 'x==1.0', [False] * 4),  # glibc 2.34
    ('x-1.0-cp312-cp312-musllinux_1_2_x86_64.whl', None, 'x==1.0', [False] * 4),
    ('x-1.0-cp312-cp312-manylinux_2_28_aarch64.whl', None, 'x==1.0', [False] * 4),
    ('x-1.0-cp312-cp312-win_amd64.whl', None, 'x==1.0', [False] * 4),
    ('x-1.0.tar.gz', None, 'x==1.0', [False] * 4),                 # source only
])
def test_a_wheel_counts_where_pip_would_install_it(filename, requires, pin, expected):
    files = [(filename, requires)]
    assert [check_wheels.has_wheel(files, Requirement(pin), p) for p in PYTHONS] == expected


def test_only_exact_pins_are_accepted(tmp_path):
    for line in ('numpy>=2', 'numpy==2.*', 'numpy', '-e .'):
        (tmp_path / 'r.txt').write_text(f'# comment\n{line}\n')
        with pytest.raises(check_wheels.CheckError, match=r'r\.txt:2: .*not'):
            check_wheels.read_pins(tmp_path / 'r.txt')


class _Index(QuietHandler):
    """numpy as PEP 691 JSON, av as PEP 503 HTML, anything else 404."""
    def do_GET(self):
        if self.path == '/simple/numpy/':
            files = [{'filename': f'numpy-2.4.6-cp{v}-cp{v}-manylinux_2_27_x86_64.'
                                  f'manylinux_2_28_x86_64.whl', 'requires-python': '>=3.11'}
                     for v in (311, 312, 313)] + [{'filename': 'numpy-2.4.6.tar.gz'}]
            self.reply(200, json.dumps({'files': files}).encode(), check_wheels.JSON_TYPE)
        elif self.path == '/simple/av/':
            self.reply(200, ('<html><body><a href="../../f/av-18.1.0-cp311-abi3-manylinux_2_28_'
                             'x86_64.whl#sha256=0" data-requires-python="&gt;=3.10">av-18.1.0-'
                             'cp311-abi3-manylinux_2_28_x86_64.whl</a><br/></body></html>').encode(),
                       'text/html')
        else:
            self.reply(404, b'')


@pytest.fixture
def index_url():
    with local_server(_Index) as url:
        yield f'{url}/simple'


def test_the_check_names_each_pin_and_python_without_a_wheel(tmp_path, index_url, capsys):
    req = tmp_path / 'requirements.txt'
    req.write_text('numpy==2.4.6\nav==18.1.0; python_version >= "3.11"\nnot-there==1.0; '
                   'python_version >= "3.13"\n')
    assert check_wheels.main(['--index-url', index_url, '--pythons', *PYTHONS, '--',
                              str(req)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f'error: {req}:1: numpy==2.4.6: no binary wheel for CPython 3.10 on x86-64 Linux '
        '(manylinux, glibc 2.28)',
        f'error: {req}:3: not-there==1.0; python_version >= "3.13": no binary wheel for CPython '
        '3.13 on x86-64 Linux (manylinux, glibc 2.28)']
    req.write_text('numpy==2.4.6; python_version >= "3.11"\n'
                   'av==18.1.0; python_version >= "3.11"\n')
    assert check_wheels.main(['--index-url', index_url, '--pythons', *PYTHONS, '--',
                              str(req)]) == 0
    assert 'a wheel for each on CPython 3.10, 3.11, 3.12, 3.13' in capsys.readouterr().out


def test_an_unreachable_index_is_an_error(tmp_path, capsys):
    req = tmp_path / 'requirements.txt'
    req.write_text('numpy==2.4.6\n')
    assert check_wheels.main(['--index-url', 'http://127.0.0.1:9/simple', '--pythons', '3.12',
                              '--', str(req)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: check_wheels: cannot read http://127.0.0.1:9/simple/numpy/')
    assert 'PIP_INDEX_URL' in err
