"""The two prctl(2) settings the trainer's processes use: a parent's death as a signal, and dumpability."""

import ctypes
import ctypes.util
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def stop_with_parent() -> None:
    """Get SIGTERM (a shutdown: a job is re-run) when the parent dies, even by SIGKILL. Safe in a preexec_fn."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def set_dumpable(dumpable: bool) -> None:
    """A process that is not dumpable has no core dumps, and its /proc/<pid>/environ, mem and ptrace need
    CAP_SYS_PTRACE, even for the same user. execve makes a process dumpable again; fork keeps the setting."""
    _prctl(PR_SET_DUMPABLE, int(dumpable))
