"""Work a widget starts (mesh export, photo inversion, a checkpoint download, fetching a frame
from the render server) on a daemon thread, so that the window keeps drawing: its progress for
the panel, Cancel, and one closing message that says what was saved, cancelled or went wrong; an
error never takes the window down, and a job always ends (no panel left "downloading" for ever).

The viewer's other threads are long-lived workers that serve only the newest request
(render_worker, remote_worker, pickle_widget.FolderLister) and the Trainer's run monitors."""
import threading


class BackgroundTask:
    """Mixin for widgets: `progress` (None when idle), `message`, `running`, `cancel`, `join`."""
    progress = None
    message = ''
    _cancel = None
    _thread = None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def _start(self, name, progress, work, cancelled, cancelled_message, errors, failure,
               message=''):
        """Run work() -> success message; `cancelled` exception types end with
        `cancelled_message`, `errors` with their own one line, anything else with `failure`.
        `message` is shown until then (with no `progress`)."""
        self._cancel = threading.Event()
        self.progress = progress
        self.message = message

        def run():
            try:
                self.message = work()
            except cancelled:
                self.message = cancelled_message
            except errors as e:
                self.message = str(e)
            except Exception as e:  # never take the window down
                self.message = f'{failure}: {type(e).__name__}: {e}'.splitlines()[0]
            finally:
                self.progress = None
        self._thread = threading.Thread(target=run, daemon=True, name=name)
        self._thread.start()

    def cancel(self):
        if self._cancel is not None:
            self._cancel.set()

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
