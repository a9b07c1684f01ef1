"""How the command-line tools end: a problem the user can fix is one `error:` line and exit
status 1 (a bad command line is refused earlier, with 2: eg3d_runtime.arguments), Ctrl-C a
one-line note and 130, SIGTERM the same note and 143, never a traceback.

SIGTERM (`kill`, the Trainer tab's Stop of a dataset build) is raised as `Terminated`, a
KeyboardInterrupt, so the same clean-up runs as for Ctrl-C: Python's default would end the
process at once and leave temporary files behind."""
import contextlib
import signal
import sys
import threading

from ..files import OutputExists
from ..memory import InsufficientMemory

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block SIGTERM raises Terminated in the main thread (elsewhere: unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(run, args, errors, interrupted):
    """run(args) -> exit status; `errors` are the exception types printed as one line (with
    OutputExists, InsufficientMemory, MemoryError and OSError, which every command may meet),
    `interrupted` says what Ctrl-C or SIGTERM left behind."""
    try:
        with sigterm_as_interrupt():
            status = run(args)
    except (OutputExists, InsufficientMemory) + tuple(
            errors if isinstance(errors, tuple) else (errors,)) as e:
        print(f'error: {one_line(e)}', file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print('error: out of memory (try smaller sizes)', file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:     # a full disk, a folder made read-only meanwhile: nothing was kept
        where = f'{e.filename}: ' if e.filename else ''
        print(f'error: {where}{one_line(e.strerror or e)}', file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as e:
        print(f'\n{interrupted}', file=sys.stderr)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    return status or 0


def one_line(error):
    """An exception's message on one line."""
    return ' '.join(str(error).split()) or type(error).__name__
