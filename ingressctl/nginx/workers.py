"""nginx worker generations: which workers still accept, which still drain, what they use.

After SIGHUP the master starts new workers, sleeps ~100 ms, and only then tells the old
ones to stop accepting; an old worker that got the message renames itself
`nginx: worker process is shutting down` and closes its listening sockets, then finishes
its in-flight requests (for up to worker_shutdown_timeout). We read that state from /proc.

`Generations` remembers, for every configuration that was replaced, the PIDs of its
workers and the files (certificates, htpasswd, CA bundles) it refers to: a file is deleted
only when no live or draining generation refers to it, and the oldest generations can be
closed when too many drain at once (long-lived connections keep a generation alive).

Design choice: a worker is identified by PID *and* its parent (the master), so a PID reused
by an unrelated process never counts as a draining worker.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
WORKER_TITLE = "nginx: worker process"
SHUTTING_DOWN = "is shutting down"


def _parent_and_title(pid: int) -> tuple[int, str] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    ppid = int(stat.rpartition(")")[2].split()[1])
    return ppid, title.strip()


def workers(master: int) -> dict[int, bool]:
    """Worker PIDs of `master` -> True while the worker still accepts new connections."""
    out: dict[int, bool] = {}
    for entry in os.listdir(PROC):
        if not entry.isdigit():
            continue
        found = _parent_and_title(int(entry))
        if found is None or found[0] != master or not found[1].startswith(WORKER_TITLE):
            continue
        out[int(entry)] = SHUTTING_DOWN not in found[1]
    return out


def accepting(master: int, pids: frozenset[int]) -> frozenset[int]:
    """Those of `pids` that are still workers of `master` and still accept connections."""
    out = set()
    for pid in pids:
        found = _parent_and_title(pid)
        if found is not None and found[0] == master and found[1].startswith(WORKER_TITLE) \
                and SHUTTING_DOWN not in found[1]:
            out.add(pid)
    return frozenset(out)


def alive(master: int, pids: frozenset[int]) -> frozenset[int]:
    """Those of `pids` that are still workers of `master` (accepting or draining)."""
    out = set()
    for pid in pids:
        found = _parent_and_title(pid)
        if found is not None and found[0] == master and found[1].startswith(WORKER_TITLE):
            out.add(pid)
    return frozenset(out)


@dataclass
class Generation:
    config_id: str
    pids: frozenset[int]
    files: frozenset[str]


class Generations:
    """Replaced configurations whose workers may still run, oldest first."""

    def __init__(self) -> None:
        self.draining: list[Generation] = []

    def retire(self, generation: Generation) -> None:
        if generation.pids:
            self.draining.append(generation)

    def reap(self, master: int) -> list[Generation]:
        """Forget generations whose workers have all exited; returns those."""
        done: list[Generation] = []
        still: list[Generation] = []
        for g in self.draining:
            g.pids = alive(master, g.pids)
            (still if g.pids else done).append(g)
        self.draining = still
        return done

    def files_in_use(self) -> set[str]:
        return set().union(*(g.files for g in self.draining))

    def close_oldest(self, master: int, keep: int) -> list[Generation]:
        """Stop (SIGTERM) the oldest draining generations until at most `keep` remain.

        Their workers already finished every short request; what keeps them alive is
        long-lived connections (websockets, streams), which are closed as
        worker_shutdown_timeout would close them, only sooner.
        """
        self.reap(master)
        closed = []
        while len(self.draining) > max(keep, 0):
            g = self.draining.pop(0)
            for pid in alive(master, g.pids):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            closed.append(g)
        deadline = time.monotonic() + 1.0  # gone before the next generation starts (bounded)
        while any(alive(master, g.pids) for g in closed) and time.monotonic() < deadline:
            time.sleep(0.005)
        return closed

    def clear(self) -> None:
        self.draining.clear()


@dataclass(frozen=True)
class ProcessSample:
    """One nginx process, from /proc: CPU seconds, memory, start time."""

    cpu_seconds: float
    resident_bytes: float
    virtual_bytes: float
    start_time: float  # Unix seconds


def process_samples(master: int) -> list[ProcessSample]:
    """The master and its workers (draining ones too) as /proc shows them; [] when gone."""
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    try:
        boot = next(float(line.split()[1]) for line in (PROC / "stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration):
        return []
    out = []
    for pid in [master, *workers(master)]:
        try:
            fields = (PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # after the name: state=0 ... utime=11 stime=12 ... starttime=19 vsize=20 rss=21
        out.append(ProcessSample(cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
                                 resident_bytes=float(int(fields[21]) * page), virtual_bytes=float(fields[20]),
                                 start_time=boot + int(fields[19]) / ticks))
    return out
