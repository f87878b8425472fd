"""Where a loaded server's CPU goes: a sampling profiler for the bench servers.

``python -m tcpserver.bench serve --port PORT --profile FILE`` (and the same
for ``baseline``, the plain Twisted ``LineReceiver``) samples the server's
Python stack every ``--profile-interval`` milliseconds of the process's CPU
time (``setitimer(ITIMER_PROF)``, user and system time: a system call is
charged to the Python function that made it) and, when the server stops
(SIGTERM or SIGINT), writes the functions that took the most samples -
by themselves (*self*) and with what they called (*total*) - as shares of
all samples and as that share of the CPU time sampled.

It answers what :mod:`tcpserver.bench.phases` (in process, a stub socket)
cannot: the split of a real server's time under a real load, system calls
and reactor dispatch included - the benchmark harness's load or
``python -m tcpserver.bench load``.  Run it on both servers under the same
load and compare the shares.  Unlike ``cProfile`` it does not slow every
call down: one sample costs a walk of the stack, a few microseconds, and
the kernel spaces the samples by at least its timer tick (on a 250 Hz
kernel, one per 4 ms of CPU whatever the interval asked).  The counts
are estimates of where the time goes, not exact times: sample for a few
seconds of load (a thousand samples or more).
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["DEFAULT_INTERVAL_MS", "Sampler", "interval_ms", "profiled", "site_of"]

#: milliseconds of CPU between two samples
DEFAULT_INTERVAL_MS = 0.5

#: (file, function, first line)
Site = tuple[str, str, int]


def site_of(frame: FrameType) -> Site:
    """Where ``frame`` runs: its file (the last two path parts), function and first line."""
    code = frame.f_code
    path = code.co_filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(path[-2:]), code.co_name, code.co_firstlineno


class Sampler:
    """
    Counts, every ``interval`` seconds of the process's CPU time, the
    function running (*self*) and every function on its stack (*total*).

    Only one sampler may run in a process (it owns SIGPROF while it runs).
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL_MS / 1000) -> None:
        if not 0 < interval < math.inf:
            raise ValueError(f"interval must be seconds above 0, not {interval!r}")
        self.interval = interval
        self.samples = 0
        self.own: Counter[Site] = Counter()
        self.total: Counter[Site] = Counter()
        self._previous: Any = None
        self._running = False
        self._cpu_started = 0.0
        self.cpu_seconds = 0.0

    def start(self) -> None:
        """Start sampling (the main thread only: that is where Python runs signal handlers)."""
        if self._running:
            return
        self._previous = signal.signal(signal.SIGPROF, self._tick)
        self._running = True
        self._cpu_started = time.process_time()
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        """Stop sampling; the counts stay."""
        if not self._running:
            return
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self.cpu_seconds += time.process_time() - self._cpu_started
        self._running = False
        signal.signal(signal.SIGPROF, self._previous)

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        if frame is None:
            return
        self.samples += 1
        self.own[site_of(frame)] += 1
        seen: set[Site] = set()
        walk: FrameType | None = frame
        while walk is not None:
            site = site_of(walk)
            if site not in seen:  # (a recursive function counts once per sample)
                seen.add(site)
                self.total[site] += 1
            walk = walk.f_back

    def report(self, top: int = 40) -> str:
        """
        The ``top`` sites by self samples, then by total samples, as text:
        each with its share of the samples and that share of the CPU time
        sampled.
        """
        samples = self.samples
        cpu = self.cpu_seconds
        if not samples:
            return (
                f"no samples in {cpu:.3f} s of CPU: the server used less CPU than"
                f" one sample period ({self.interval * 1e3:g} ms)\n"
            )
        lines = [
            f"{samples} samples in {cpu:.2f} s of CPU: one per {1e3 * cpu / samples:.2f} ms"
            f" (asked: {self.interval * 1e3:g} ms; the kernel's timer tick may space them more)",
        ]
        for title, counts in (("self", self.own), ("total", self.total)):
            lines.append("")
            lines.append(f"by {title} samples:")
            lines.append(f"{'share':>7} {'samples':>8} {'ms CPU':>9}  function")
            for (path, name, first), count in counts.most_common(top):
                share = count / samples
                lines.append(
                    f"{100 * share:6.2f}% {count:8d} {1e3 * share * cpu:9.1f}"
                    f"  {name} ({path}:{first})"
                )
        return "\n".join(lines) + "\n"


@contextlib.contextmanager
def profiled(path: str | None, interval_ms: float = DEFAULT_INTERVAL_MS) -> Iterator[None]:
    """
    Sample what runs inside the ``with`` block and write the report to
    ``path`` when it ends (nothing at all when ``path`` is ``None``).

    The file is created at once, so that a path that cannot be written
    fails before the server starts (:class:`OSError`).
    """
    if path is None:
        yield
        return
    target = Path(path)
    target.write_text("(the server is running: the profile is written when it stops)\n")
    sampler = Sampler(interval_ms / 1000)
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()
        target.write_text(sampler.report())
        print(f"profile: {sampler.samples} samples written to {target}", file=sys.stderr)


def interval_ms(text: str) -> float:
    """``--profile-interval``'s value: milliseconds above 0 (an ``argparse`` type)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be milliseconds above 0, not {text!r}")
    return value
