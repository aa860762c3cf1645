"""A process's memory as Linux reports it (/proc/PID/status), and a thread that keeps its peak while work runs."""

import threading
from pathlib import Path


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> None:
    """Reset the process's VmHWM to its current resident memory (Linux: 5 into /proc/PID/clear_refs), so a peak
    read later belongs to the work that follows, not to what the process did before."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class RssSampler(threading.Thread):
    """The highest VmRSS of a process between start() and stop(), read every `interval_s`."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.before_kib = self.peak_kib = memory_kib(pid)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            self.peak_kib = max(self.peak_kib, memory_kib(self.pid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        self.peak_kib = max(self.peak_kib, memory_kib(self.pid))
        return self.peak_kib
