"""Stage times of a frame without making the host wait: on a CPU the work is done when a call
returns, so the clock is read then; on CUDA the work is queued, so CUDA events are recorded
between stages and read only when someone asks for the times."""
import time

import torch


class Stopwatch:
    def __init__(self, device):
        self._cuda = torch.device(device).type == 'cuda'
        self._marks = [('start', self._now())]

    def _now(self):
        if not self._cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def lap(self, stage):
        """The stage that ends now."""
        self._marks.append((stage, self._now()))

    def laps(self):
        """{stage: milliseconds}, in order; on CUDA this waits for the last stage to finish."""
        if self._cuda:
            self._marks[-1][1].synchronize()
            spans = [a.elapsed_time(b) for (_, a), (_, b) in zip(self._marks, self._marks[1:])]
        else:
            spans = [(b - a) * 1e3 for (_, a), (_, b) in zip(self._marks, self._marks[1:])]
        return {stage: ms for (stage, _), ms in zip(self._marks[1:], spans)}
