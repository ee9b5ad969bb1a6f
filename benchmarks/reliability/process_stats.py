"""Memory and CPU of a server process and its descendants (serving workers), read from /proc."""

import os
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` plus its descendants (serving workers, if any), in KiB; 0 once gone."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo.extend(_children(current))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` plus its live descendants."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(_children(current))
    return total


class RssSampler:
    """Samples rss_kb(pid) every `interval_s` on a thread: peak and the time series."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_kb(self.pid)))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)


def machine_busy_s() -> float:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """Every `interval_s` on a thread: the cores the whole machine kept busy, and how much of that was the
    server (`pid` and its descendants) and this process (the load generator): the rest is other jobs on a
    shared machine, which a latency figure should be read beside."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[dict[str, float]] = []  # t (monotonic), machine, server, generator: cores busy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.monotonic(), machine_busy_s(), cpu_seconds(self.pid), time.process_time()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic(), machine_busy_s(), cpu_seconds(self.pid), time.process_time()
            wall = now[0] - last[0]
            machine, server, generator = ((now[i] - last[i]) / wall for i in (1, 2, 3))
            self.samples.append(
                {
                    "t": now[0],
                    "machine": machine,
                    "server": server,
                    "generator": generator,
                    "others": max(0.0, machine - server - generator),
                }
            )
            last = now

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def others_cores(self, start: float, end: float) -> float | None:
        """Mean cores other jobs kept busy between two monotonic times."""
        inside = [s["others"] for s in self.samples if start <= s["t"] < end]
        return round(sum(inside) / len(inside), 2) if inside else None
