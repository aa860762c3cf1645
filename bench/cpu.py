"""CPU time a process has used (Linux /proc/PID/stat: user + system), for figures that mean something on a loaded
machine: the wall clock counts other processes' time, the CPU time of the process under test does not."""

import os
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds `pid` has used so far (its threads included, its children not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime, stime: fields 14 and 15 of stat(5)


def children_cpu_seconds(parent_pid: int) -> float:
    """CPU seconds the processes whose parent is `parent_pid` have used so far: a Postgres postmaster's backends and
    background workers (the WAL writer's share of a run included). A child that exits takes its count with it."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == parent_pid:  # ppid: field 4 of stat(5)
            total += (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
    return total
