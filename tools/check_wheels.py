"""Fails when a pin of the requirements files has no binary wheel for one of the supported CPythons
on x86-64 Linux, honouring the pins' environment markers: without one, `make` on that Python
builds from source, which needs a compiler and the Python headers, or fails.

It reads the package index's project pages (PEP 691 JSON, or PEP 503 HTML) and matches the wheel
tags with `packaging`, the library pip matches them with. Nothing is downloaded: `pip download
--only-binary` fetches every wheel (torch's alone is 0.5 GB a Python), `pip install --dry-run`
downloads them too where the index serves no separate metadata, and `pip index versions` ignores
--only-binary (it lists sdist-only releases).

Usage: tools/check_wheels.py [--index-url URL] --pythons 3.10 3.11 ... -- requirements.txt ...
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

# glibc 2.28 is torch's own floor (manylinux_2_28); older manylinux tags run there too.
PLATFORMS = ([f'manylinux_2_{minor}_x86_64' for minor in range(28, 4, -1)]
             + ['manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64'])
DEFAULT_INDEX = 'https://pypi.org/simple'
JSON_TYPE = 'application/vnd.pypi.simple.v1+json'


class CheckError(Exception):
    pass


def read_pins(path):
    """(line number, Requirement) of each pin; anything but an exact `name==version` pin (with an
    optional marker) is refused, as the project pins exactly."""
    pins = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement as e:
                raise CheckError(f'{path}:{number}: {line!r}: not a requirement ({e})') from None
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator != '==' or '*' in specs[0].version:
                raise CheckError(f'{path}:{number}: {line!r}: not an exact pin (name==version)')
            pins.append((number, req))
    return pins


def target_environment(python):
    """Marker variables of CPython `python` ('3.10') on x86-64 Linux."""
    env = default_environment()
    env.update(python_version=python, python_full_version=f'{python}.0',
               implementation_name='cpython', platform_python_implementation='CPython',
               sys_platform='linux', platform_system='Linux', platform_machine='x86_64',
               os_name='posix')
    return env


def applies(req, python):
    return req.marker is None or req.marker.evaluate(target_environment(python))


def supported_tags(python):
    version = tuple(int(part) for part in python.split('.'))
    return (set(cpython_tags(version, platforms=PLATFORMS))
            | set(compatible_tags(version, f'cp{version[0]}{version[1]}', PLATFORMS)))


def has_wheel(files, req, python):
    """Whether one of the project's files is a wheel of the pinned version that CPython `python`
    on x86-64 Linux installs. `files`: (filename, requires-python or None) pairs."""
    tags = supported_tags(python)
    for filename, requires_python in files:
        if not filename.endswith('.whl'):
            continue
        try:
            _, version, _, file_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if not req.specifier.contains(version, prereleases=True) or not tags & file_tags:
            continue
        if requires_python and not SpecifierSet(requires_python).contains(Version(python),
                                                                          prereleases=True):
            continue
        return True
    return False


class _Anchors(HTMLParser):
    """[text, data-requires-python] of the links of a PEP 503 project page."""
    def __init__(self):
        super().__init__()
        self.files, self._in_link = [], False

    def handle_starttag(self, tag, attrs):
        if tag == 'a':
            self.files.append(['', dict(attrs).get('data-requires-python')])
            self._in_link = True

    def handle_data(self, data):
        if self._in_link:
            self.files[-1][0] += data.strip()

    def handle_endtag(self, tag):
        if tag == 'a':
            self._in_link = False


def parse_project_page(body, content_type):
    """(filename, requires-python) of every file a project page lists."""
    if content_type.split(';')[0].strip() == JSON_TYPE:
        return [(f['filename'], f.get('requires-python')) for f in json.loads(body)['files']]
    parser = _Anchors()
    parser.feed(body.decode('utf-8', 'replace'))
    return [tuple(link) for link in parser.files]


def fetch_files(index_url, name):
    url = f'{index_url.rstrip("/")}/{canonicalize_name(name)}/'
    request = urllib.request.Request(url, headers={'Accept': f'{JSON_TYPE}, text/html;q=0.1'})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return parse_project_page(response.read(), response.headers.get('Content-Type', ''))
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return []
        raise CheckError(f'cannot read {url}: HTTP {e.code}') from None
    except (urllib.error.URLError, OSError) as e:
        raise CheckError(f'cannot read {url}: {getattr(e, "reason", e)} (the check needs the '
                         f'package index; --index-url or PIP_INDEX_URL names another)') from None


def missing_wheels(pins, pythons, files_of):
    """Lines naming each (pin, Python) without a wheel; `pins`: (path, line number, Requirement)."""
    problems = []
    for path, number, req in pins:
        for python in pythons:
            if applies(req, python) and not has_wheel(files_of[canonicalize_name(req.name)], req,
                                                      python):
                problems.append(f'{path}:{number}: {req}: no binary wheel for CPython {python} '
                                f'on x86-64 Linux (manylinux, glibc 2.28)')
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('requirements', nargs='+', help='requirements files of exact pins')
    parser.add_argument('--pythons', nargs='+', required=True, metavar='X.Y',
                        help="CPython versions (the Makefile's PYTHONS)")
    parser.add_argument('--index-url', default=os.environ.get('PIP_INDEX_URL', DEFAULT_INDEX),
                        help='simple index (default: $PIP_INDEX_URL, else PyPI)')
    args = parser.parse_args(argv)
    try:
        pins = [(path, number, req) for path in args.requirements
                for number, req in read_pins(path)]
        names = sorted({canonicalize_name(req.name) for _, _, req in pins})
        with ThreadPoolExecutor(8) as pool:
            files_of = dict(zip(names, pool.map(lambda n: fetch_files(args.index_url, n), names)))
    except (CheckError, OSError) as e:
        print(f'error: check_wheels: {e}', file=sys.stderr)
        return 1
    problems = missing_wheels(pins, args.pythons, files_of)
    for line in problems:
        print(f'error: {line}', file=sys.stderr)
    if problems:
        return 1
    print(f'check_wheels: {len(pins)} pins in {", ".join(args.requirements)}: a wheel for each on '
          f'CPython {", ".join(args.pythons)} (x86-64 Linux)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
