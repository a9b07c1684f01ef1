"""Readers for the files of a training run directory that is still being written
(docs/eg3d-reference.md 7.2).

Every reader tolerates what a live or broken run leaves behind: NaN/Infinity literals, a
half-written last line, files that are missing, truncated or replaced, and undecodable lines.
No GUI imports: the Trainer tab calls these from a background thread. File names and line
formats come from eg3d_runtime.run_directory, the contract the trainer writes by.
"""
import json
import os
from pathlib import Path

import numpy as np

from eg3d_runtime.run_directory import (FAKES_SUFFIXES, fakes_kimg, parse_status_line,
                                        snapshot_kimg)

TRACEBACK = 'Traceback (most recent call last):'


def held_open(path, proc=Path('/proc')):
    """Whether a process on this machine has `path` open (a live trainer keeps its log.txt
    open to the end), from /proc/PID/fd: True, False, or None where there is no /proc to
    tell (not Linux). Processes whose descriptors this user may not read are not seen."""
    if not (proc / 'self' / 'fd').is_dir():
        return None
    target = os.path.realpath(path)
    for fd_dir in proc.glob('[0-9]*/fd'):
        try:
            links = [entry.path for entry in os.scandir(fd_dir)]
        except OSError:       # another user's process, or one that just ended
            continue
        for link in links:
            try:
                if os.readlink(link) == target:
                    return True
            except OSError:
                pass
    return False


class JsonlTail:
    """The records of a growing JSON-lines file. Each poll parses only the complete lines added
    since the last one (a half-written last line waits for its newline); a file that was
    replaced or truncated is read again from the start; a missing file has no records."""

    def __init__(self, path):
        self.path = Path(path)
        self.records = []
        self.bad_lines = 0
        self._offset = 0
        self._inode = None

    def _reset(self):
        changed = bool(self.records)
        self.records, self.bad_lines, self._offset, self._inode = [], 0, 0, None
        return changed

    def poll(self):
        """Read what was appended; True when the records changed."""
        try:
            st = self.path.stat()
        except OSError:
            return self._reset()
        changed = False
        if st.st_ino != self._inode or st.st_size < self._offset:
            changed = self._reset()
            self._inode = st.st_ino
        if st.st_size == self._offset:
            return changed
        try:
            with open(self.path, 'rb') as f:
                f.seek(self._offset)
                data = f.read(st.st_size - self._offset)
        except OSError:
            return changed
        end = data.rfind(b'\n')
        if end < 0:
            return changed
        self._offset += end + 1
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)      # accepts NaN, Infinity, -Infinity
            except ValueError:
                record = None
            if isinstance(record, dict):
                self.records.append(record)
            else:
                self.bad_lines += 1
        return True


def stat_value(entry):
    """The mean of one stats.jsonl entry ({"num", "mean", "std"} or a bare number), NaN if none."""
    if isinstance(entry, dict):
        entry = entry.get('mean')
    if isinstance(entry, bool) or not isinstance(entry, (int, float)):
        return float('nan')
    return float(entry)


def stat_series(records):
    """{stat name: (kimg, values)} over the ticks of stats.jsonl, x = Progress/kimg. A tick that
    lacks a stat, or whose value is not a number, gives NaN there."""
    rows = [r for r in records if np.isfinite(stat_value(r.get('Progress/kimg')))]
    kimg = np.array([stat_value(r['Progress/kimg']) for r in rows])
    names = dict.fromkeys(k for r in rows for k in r if k != 'timestamp')
    return {name: (kimg, np.array([stat_value(r.get(name)) for r in rows])) for name in names}


def metric_series(records):
    """{result name: (kimg, values)} of one metric-*.jsonl, x from each line's snapshot_pkl."""
    points = {}
    for r in records:
        kimg = snapshot_kimg(r.get('snapshot_pkl', ''))
        results = r.get('results')
        if kimg is None or not isinstance(results, dict):
            continue
        for name, value in results.items():
            points.setdefault(name, []).append((kimg, stat_value(value)))
    return {name: tuple(np.array(v, dtype=np.float64) for v in zip(*pts))
            for name, pts in points.items()}


def list_fakes(run_dir):
    """{'rgb' | 'raw' | 'depth': [(kimg, path)]} of the fakes*.png grids, oldest first."""
    grids = {kind: [] for kind in FAKES_SUFFIXES}
    try:
        names = [p.name for p in Path(run_dir).iterdir()]
    except OSError:
        return grids
    for name in names:
        found = fakes_kimg(name)
        if found:
            kimg, kind = found
            grids[kind].append((kimg, Path(run_dir) / name))
    return {kind: sorted(items) for kind, items in grids.items()}


def read_tail(path, max_bytes=64 * 1024, max_lines=300):
    """The last lines of a text file (a missing file has none)."""
    try:
        with open(path, 'rb') as f:
            size = f.seek(0, 2)
            f.seek(max(size - max_bytes, 0))
            data = f.read()
    except OSError:
        return []
    lines = data.decode('utf-8', 'replace').splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]                      # the first line was cut in the middle
    return lines[-max_lines:]


def last_status(lines):
    """(kimg, sec/kimg) of the newest tick status line in the log (docs/eg3d-reference.md 7.2),
    or None. The log has it a moment before stats.jsonl, written after the tick's snapshots."""
    for line in reversed(lines):
        status = parse_status_line(line)
        if status:
            _, kimg, _, sec_per_kimg = status
            return kimg, sec_per_kimg
    return None


def crash_message(lines):
    """The exception line of the last Python traceback in the log lines, or None."""
    starts = [i for i, line in enumerate(lines) if line.startswith(TRACEBACK)]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        if line.strip() and not line[0].isspace():
            return line.strip()
    return 'the run crashed (traceback in log.txt)'


def read_json(path):
    """A JSON object file, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
