"""The command lines' checks, one module for every command and the viewer: argparse types that
refuse a bad value before any work starts, and a parser whose every refusal is one line,

    error: --psi nan: must be a finite number from -1 to 2

naming the option, the value and what is allowed, with exit status 2 (argparse's own code for a
bad command line; a failure while working is 1, Ctrl-C 130, SIGTERM 143: eg3d_runtime.commands.ending).

Built on argparse rather than a validation library: every command already is an argparse
parser (the training options' table drives one, the Trainer tab writes argv for it), and the
official scripts' spellings (`--image_mode` beside `--image-mode`, `--bench [STEPS]`) are
argparse's. What argparse lacks is what this module adds: finite, ranged numbers, seed lists,
paths checked for kind and writability, and one-line messages. This module imports neither
torch nor the engine, so a bad value is refused in a fraction of a second.
"""
import argparse
import math
import os
import re
import shlex
import sys
from pathlib import Path

SEED_MAX = 2 ** 32 - 1          # numpy RandomState seeds, as the official scripts draw z
MAX_SEEDS = 1_000_000           # a longer list is a typo (and would fill memory as a list)
PSI_RANGE = (-1.0, 2.0)         # the viewer's truncation slider
FOV_RANGE = (0.0, 180.0)        # degrees, both excluded
MAX_NRR = 4096                  # neural rendering resolution; memory is estimated below that
MAX_WINDOW = 16384              # viewer window pixels per side
FPS_RANGE = (0.0, 1000.0)       # video frames per second: above 0, at most 1000
EXIT_USAGE = 2


class Refusal(argparse.ArgumentTypeError):
    """A value an option does not allow: `value` as typed and what `allowed` is; argparse
    names the option of a type's refusal, a check of the whole command line gives `option`."""

    def __init__(self, value, allowed, option=None):
        self.value, self.allowed = value, allowed
        super().__init__(f"{option + ' ' if option else ''}{shown(value)}: {allowed}")


def shown(value):
    """The value as the user typed it, quoted where a shell would need it ('' for empty)."""
    text = str(value)
    return shlex.quote(text) if text == '' or re.search(r'\s', text) else text


def _fmt(x):
    return f'{x:g}' if isinstance(x, float) else str(x)


# ---- numbers -------------------------------------------------------------------------------------

def _range_text(kind, lo, hi, lo_open, hi_open):
    """'an integer from 1 to 4096', 'a finite number above 0 and at most 1000', ..."""
    what = 'an integer' if kind is int else 'a finite number'
    if lo is not None and hi is not None and not lo_open and not hi_open:
        return f'{what} from {_fmt(lo)} to {_fmt(hi)}'
    parts = ([] if lo is None else [f"{'above' if lo_open else 'at least'} {_fmt(lo)}"]) + \
            ([] if hi is None else [f"{'below' if hi_open else 'at most'} {_fmt(hi)}"])
    if not parts:
        return what
    return f"{what} {'of ' if parts[0].startswith('at') else ''}{' and '.join(parts)}"


def _number_type(kind, lo=None, hi=None, lo_open=False, hi_open=False):
    allowed = 'must be ' + _range_text(kind, lo, hi, lo_open, hi_open)

    def parse(text):
        try:
            value = kind(str(text).strip())
        except (TypeError, ValueError):
            raise Refusal(text, allowed) from None
        if kind is float and not math.isfinite(value):
            raise Refusal(text, allowed)
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise Refusal(text, allowed)
        if hi is not None and (value >= hi if hi_open else value > hi):
            raise Refusal(text, allowed)
        return value
    parse.allowed = allowed
    parse.__name__ = kind.__name__
    return parse


def integer(lo=None, hi=None):
    """An argparse type: an integer in [lo, hi] (either bound may be None)."""
    return _number_type(int, lo, hi)


def number(lo=None, hi=None, lo_open=False, hi_open=False):
    """An argparse type: a finite float in the range (open at a bound with lo_open/hi_open)."""
    return _number_type(float, lo, hi, lo_open, hi_open)


def boolean(text):
    """An argparse type: True/False as the official scripts spell them (also yes/no, 1/0,
    on/off)."""
    value = str(text).strip().lower()
    if value in ('true', '1', 'yes', 'y', 't', 'on'):
        return True
    if value in ('false', '0', 'no', 'n', 'f', 'off'):
        return False
    raise Refusal(text, 'must be True or False')


psi = number(*PSI_RANGE)
fov = number(*FOV_RANGE, lo_open=True, hi_open=True)
angle = number()
seed = integer(0, SEED_MAX)
nrr = integer(1, MAX_NRR)
fps = number(*FPS_RANGE, lo_open=True)
window_size = integer(64, MAX_WINDOW)
cutoff = integer(0, 1024)


def seeds(text):
    """An argparse type: '0-3,7' -> [0, 1, 2, 3, 7]; every seed from 0 to 2^32-1, ranges
    ascending, at most MAX_SEEDS in all (counted before the list is made)."""
    allowed = 'must be seeds like 0-3,7'
    ranges = []
    for part in str(text).split(','):
        m = re.fullmatch(r'\s*(\d+)\s*(?:-\s*(\d+)\s*)?', part)
        if not m:
            raise Refusal(text, allowed)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi > SEED_MAX:
            raise Refusal(text, f'seeds must be from 0 to {SEED_MAX}')
        if hi < lo:
            raise Refusal(text, f'the range {lo}-{hi} runs backwards (write {hi}-{lo})')
        ranges.append((lo, hi))
    if sum(hi - lo + 1 for lo, hi in ranges) > MAX_SEEDS:
        raise Refusal(text, f'at most {MAX_SEEDS} seeds')
    return [s for lo, hi in ranges for s in range(lo, hi + 1)]


def grid(text):
    """An argparse type: 'WxH' (or 'W,H') -> (W, H), both at least 1."""
    m = re.fullmatch(r'\s*(\d+)\s*[x,]\s*(\d+)\s*', str(text))
    if not m or not int(m.group(1)) or not int(m.group(2)):
        raise Refusal(text, 'must be a grid WxH of whole numbers of at least 1, like 4x2')
    return int(m.group(1)), int(m.group(2))


def device(text):
    """An argparse type: cpu, cuda or cuda:N (whether CUDA is there is checked when used)."""
    value = str(text).strip().lower()
    if not re.fullmatch(r'cpu|cuda(:\d+)?', value):
        raise Refusal(text, 'must be cpu, cuda or cuda:N')
    return value


# The engine's arithmetic (eg3d_runtime.fast.precision reads its names here, so that a command
# offers them before torch is loaded).
PRECISIONS = ('auto', 'fp32', 'bf16', 'fp16')


def precision_option(parser):
    """The commands' `--precision`."""
    parser.add_argument('--precision', choices=PRECISIONS, default='auto',
                        help="arithmetic of backbone and super-resolution (default auto: fp16 "
                             "super-resolution on CUDA, bf16 on CPUs where measured faster, "
                             "else fp32)")


# ---- paths ---------------------------------------------------------------------------------------

def _existing_ancestor(path):
    parent = path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    return parent


def _creatable(path, text, kind):
    """Refusal unless `path` can be made: its nearest existing ancestor is a writable folder."""
    ancestor = _existing_ancestor(path.parent if kind == 'file' else path)
    if not ancestor.is_dir():
        raise Refusal(text, f'{ancestor} is a file, not a folder')
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise Refusal(text, f'cannot create it: {ancestor} is not writable')


def output_dir(text):
    """An argparse type: a folder to write into, existing and writable or creatable."""
    if not str(text).strip():
        raise Refusal(text, 'must name a folder')
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise Refusal(text, 'is a file, not a folder')
        if not os.access(path, os.W_OK | os.X_OK):
            raise Refusal(text, 'the folder is not writable')
    else:
        _creatable(path, text, 'dir')
    return str(path)


def output_file(*suffixes):
    """An argparse type: a file to write (or replace), whose folder exists or can be made;
    with `suffixes`, its name must end in one of them (case-insensitive)."""
    def parse(text):
        if not str(text).strip():
            raise Refusal(text, 'must name a file')
        path = Path(text).expanduser()
        if suffixes and path.suffix.lower() not in suffixes:
            raise Refusal(text, f"must end in {' or '.join(suffixes)}")
        if path.is_dir():
            raise Refusal(text, 'is a folder, not a file')
        if path.exists() and not os.access(path, os.W_OK):
            raise Refusal(text, 'the file is not writable')
        _creatable(path, text, 'file')
        return str(path)
    return parse


def replaced_only_with_force(option):
    """A check for Parser.add_check: the file that `option` ('--json') names may exist already
    only with --force."""
    dest = option.lstrip('-').replace('-', '_')

    def check(args):
        path = getattr(args, dest)
        if path and os.path.exists(path) and not args.force:
            raise Refusal(path, 'exists (add --force to replace it)', option)
    return check


def folder(text):
    """An argparse type: a folder that need not exist yet (a run that has not started) but is
    not a file."""
    path = Path(text).expanduser()
    if not str(text).strip():
        raise Refusal(text, 'must name a folder')
    if path.exists() and not path.is_dir():
        raise Refusal(text, 'is a file, not a folder')
    return path


def input_path(text):
    """An argparse type: an existing, readable file or folder (a dataset: zip or folder)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise Refusal(text, 'no such file or folder')
    if not os.access(path, os.R_OK):
        raise Refusal(text, 'is not readable')
    return str(path)


def name_part(text):
    """An argparse type: text that becomes part of a file name: no path separator, not empty."""
    value = str(text)
    if not value.strip() or '/' in value or os.sep in value or '\0' in value:
        raise Refusal(text, 'must be a non-empty name without / (part of a folder name)')
    return value


def input_file(text):
    """An argparse type: an existing, readable file."""
    path = Path(text).expanduser()
    if not path.exists():
        raise Refusal(text, 'no such file')
    if path.is_dir():
        raise Refusal(text, 'is a folder, not a file')
    if not os.access(path, os.R_OK):
        raise Refusal(text, 'the file is not readable')
    return str(path)


def network(text):
    """An argparse type for --network and the viewer's pickles: an existing file or run
    directory, or a released checkpoint's name (downloaded when used). Whether the file holds
    a network is the loader's to say."""
    import checkpoints
    value = str(text).strip()
    if not value:
        raise Refusal(text, 'must name a network pickle, a run directory or a released network')
    path = Path(value).expanduser()
    if path.exists():
        if not os.access(path, os.R_OK):
            raise Refusal(text, 'is not readable')
        return value
    if checkpoints.resolve(value) is None:
        names = ', '.join(checkpoints.RELEASED)
        raise Refusal(text, f'no such file or run directory, and not a released network '
                            f'({names})')
    return value


def network_option(parser, required=False):
    """The commands' `--network` (a parser or a group: some commands take it or --cfg)."""
    parser.add_argument('--network', required=required, type=network,
                        help='network pickle, run directory (its latest snapshot) or released name')


# ---- the parser ----------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose refusals are one `error:` line on stderr, exit status 2.

    `add_check(check)` adds a check of the parsed options as a whole (options that exclude or
    need each other); check(args) raises Refusal/ArgumentTypeError/ValueError with the reason."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)   # '--headles' is a typo, not --headless
        super().__init__(*args, **kwargs)
        self._checks = []

    def add_check(self, check):
        self._checks.append(check)
        return check

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for check in self._checks:
            try:
                check(namespace)
            except (argparse.ArgumentTypeError, ValueError) as e:
                self.error(str(e))
        return namespace, extras

    def error(self, message):
        sys.stderr.write(f'error: {one_line(message)}\n')
        sys.exit(EXIT_USAGE)


_ARGUMENT = re.compile(r'argument (?P<names>[^:]+): (?P<rest>.*)', re.S)
_PHRASES = (   # argparse's own messages -> our form; {name} is the option, {0}... the groups
    (re.compile(r"invalid choice: '?(.*?)'? \(choose from (.*)\)", re.S),
     lambda name, value, choices: f"{name} {shown(value)}: must be one of "
                                  f"{choices.replace(chr(39), '')}"),
    (re.compile(r'invalid (\w+) value: (.*)', re.S),
     lambda name, kind, value: f'{name} {value.strip(chr(39))}: must be '
                               f'{"an integer" if kind == "int" else "a " + kind}'),
    (re.compile(r'expected (one argument|at least one argument|at most one argument)'),
     lambda name, what: f'{name}: needs a value' if what == 'one argument' else
     f'{name}: expected {what}'),
    (re.compile(r"ignored explicit argument '(.*)'", re.S),
     lambda name, value: f'{name}: takes no value (got {shown(value)})'),
    (re.compile(r'not allowed with argument (.*)', re.S),
     lambda name, other: f'{name}: not allowed with {other.split("/")[0]}'),
)


def one_line(message):
    """argparse's message -> '--option value: what is allowed', on one line."""
    text = ' '.join(str(message).split())
    m = _ARGUMENT.fullmatch(text)
    if not m:
        return text
    name, rest = m.group('names').split('/')[0], m.group('rest')
    for pattern, form in _PHRASES:
        found = pattern.fullmatch(rest)
        if found:
            return form(name, *found.groups())
    # a Refusal: 'value: what is allowed' (a positional argument's value speaks for itself)
    return f'{name} {rest}' if name.startswith('-') else rest
