"""The command-line tools' progress display, one for all of them: a tqdm bar on stderr for a
download (network_path), a shape export, an inversion's steps and a video's frames.

Why tqdm rather than hand-written lines: it is maintained, it is one pure-Python wheel with no
dependencies (so every Python and platform installs it), and it is already the ecosystem's
choice (pip-installed tools and PyTorch's own downloads show the same bar), so rate, time left
and terminal width are handled the way users know.

A bar is shown only when its stream is a terminal: in a log, a pipe or the render server's
connection the rewritten line would be noise, and each command still prints its one summary
line per output on stdout. tqdm is imported when a bar is made, so that a command refuses a bad
option before it loads anything."""
import sys


def on_terminal(stream):
    """Whether `stream` is a terminal (where a bar is shown)."""
    isatty = getattr(stream, 'isatty', None)
    return bool(isatty and isatty())


def bar(desc, total=None, stream=None, **options):
    """A tqdm bar named `desc` counting to `total` (None: unknown) on `stream` (default stderr),
    silent unless that is a terminal; `options` go to tqdm (unit, postfix, bar_format...)."""
    from tqdm import tqdm
    stream = stream or sys.stderr
    return tqdm(desc=desc, total=total, file=stream, disable=not on_terminal(stream),
                mininterval=0.1, dynamic_ncols=True, **options)


def advance(progress, done, total=None):
    """Move `progress` (a bar) to `done` of `total` (when given: a total may be learnt late)."""
    if total is not None and progress.total != total:
        progress.total = total
    progress.update(done - progress.n)
