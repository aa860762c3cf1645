"""A process's memory as Linux reports it (/proc/PID/status), and a thread that keeps its peak while work runs."""

import threading
from pathlib import Path


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


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
