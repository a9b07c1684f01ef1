"""The render worker: a thread that renders only the newest RenderArgs, so the GUI never waits.

The GUI calls `submit(args)` every frame (identical args are ignored) and `poll()` to pick up
the latest finished frame. A newer request aborts an unwanted full-quality frame between stages.
`warm_up(requests)` renders requests whose results nobody wants while nothing else is asked:
the viewer opens its first network that way while its window is still being made.
"""
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Request(Protocol):
    """What the worker reads of a request (RenderArgs, compare.PanelBatch)."""
    @property
    def pkl(self) -> str | None: ...
    @property
    def preview(self) -> bool: ...


class Outcome(Protocol):
    """What the worker reads of a result (RenderResult, compare.BatchResult)."""
    @property
    def aborted(self) -> bool: ...


RequestT = TypeVar('RequestT', bound=Request, contravariant=True)
OutcomeT = TypeVar('OutcomeT', bound=Outcome, covariant=True)


class Renderer(Protocol[RequestT, OutcomeT]):
    """Turns a request into a result on the worker thread; errors come back in the result.
    `should_abort()` says a newer request made this one unwanted; `on_progress(fraction)` reports
    network loading."""
    def render(self, args: RequestT, should_abort: Callable[[], bool],
               on_progress: Callable[[float], None]) -> OutcomeT: ...


class WaitsIdle:
    """`wait_idle` for a worker with a `busy` property (this one, the remote worker)."""
    busy: bool

    def wait_idle(self, timeout=None, poll=0.005):
        """Block until nothing is pending or rendering (for headless runs, tests and the
        benchmarks, which poll more often to time frames to the millisecond)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True


class RenderWorker(WaitsIdle, Generic[RequestT, OutcomeT]):
    def __init__(self, renderer: Renderer[RequestT, OutcomeT]):
        self._renderer = renderer       # used on the worker thread only
        self._lock = threading.Condition()
        self._pending = None          # newest args not yet rendered
        self._last_submitted = None
        self._result = None           # newest finished result not yet polled
        self._busy_with = None
        self._status = None           # e.g. 'Loading x.pkl... 40%'
        self._warm = []               # requests rendered only to prepare, results dropped
        self._stop = False
        self._thread = threading.Thread(target=self._run, name='render-worker', daemon=True)
        self._thread.start()

    def submit(self, args: RequestT):
        """Ask for a frame; returns False when args equal the last request (nothing to do)."""
        with self._lock:
            if args == self._last_submitted:
                return False
            self._last_submitted = args
            self._pending = args
            self._lock.notify()
            return True

    def warm_up(self, requests):
        """Render `requests` whenever nothing else is pending, and drop their results: the
        first frames' one-time costs (opening the network, oneDNN kernels, buffers, the 'auto'
        precision measurement) are paid before anyone waits for a frame. A request submitted
        meanwhile goes first and aborts a full-quality warm-up frame between stages."""
        with self._lock:
            self._warm.extend(requests)
            self._lock.notify()

    def poll(self) -> OutcomeT | None:
        """The newest finished frame since the last poll, or None."""
        with self._lock:
            result, self._result = self._result, None
            return result

    @property
    def busy(self):
        return self._busy_with is not None or self._pending is not None or bool(self._warm)

    @property
    def status(self):
        return self._status

    def close(self):
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(timeout=5)

    def _should_abort(self):
        # Abort only a full-quality frame that a newer request has replaced.
        pending, current = self._pending, self._busy_with
        return pending is not None and current is not None and not current.preview

    def _on_progress(self, fraction):
        name = self._busy_with.pkl or ''
        self._status = f'Loading {name.rsplit("/", 1)[-1]}... {fraction * 100:.0f}%'

    def _run(self):
        while True:
            with self._lock:
                while self._pending is None and not self._warm and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                warming = self._pending is None
                if warming:
                    args = self._warm.pop(0)
                else:
                    args, self._pending = self._pending, None
                self._busy_with = args
            result = self._renderer.render(args, should_abort=self._should_abort,
                                          on_progress=self._on_progress)
            with self._lock:
                self._status = None
                self._busy_with = None
                if not result.aborted and not warming:
                    self._result = result
