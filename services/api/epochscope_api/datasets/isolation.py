"""Run one function in a child process with a memory limit and a timeout, so that a runaway (a file that decodes
to far more than it weighs, a pathological template) ends that child, never the API process.

Children fork from a forkserver that has already imported the modules named with `preload` and those the main
module imports (a fork is then a few milliseconds, and inherits none of the API's threads or event loop). A child's
address space may grow by `memory_bytes` past what it holds when it starts (RLIMIT_AS): past it, an allocation fails
(MemoryError, or the child dies), and the caller gets OutOfMemory. Arguments and results travel pickled.
"""

import ctypes
import multiprocessing
import resource
import sys
import types
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_CONTEXT = multiprocessing.get_context("forkserver")
M_ARENA_MAX = -8  # glibc malloc.h: mallopt's parameter for the most arenas
_PRELOAD: list[str] = []


class IsolatedRunFailed(Exception):
    """The child gave no result: it passed its memory limit, its timeout, or died."""


class OutOfMemory(IsolatedRunFailed):
    pass


class TimedOut(IsolatedRunFailed):
    pass


def preload(*modules: str) -> None:
    """Modules the forkserver imports once, before its first child (effective only before it starts)."""
    _PRELOAD.extend(modules)


def _main_imports() -> list[str]:
    """The modules the main module's names come from (the API's console script: `epochscope_api.main`).

    multiprocessing runs the main script again in every forkserver child (spawn.prepare); its own preload of
    "__main__" never takes effect (CPython 3.11's forkserver asks get_preparation_data for a key it does not give),
    so without these in the forkserver each child imported the API's whole app again: 1.4-2.7 s an upload."""
    main = sys.modules.get("__main__")
    names = set()
    for value in vars(main).values() if main else ():
        name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
        if isinstance(name, str) and name not in ("__main__", "builtins"):
            names.add(name)
    return sorted(names)


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _share_malloc_arenas() -> None:
    """glibc gives each new thread (the tokenizer's encode_batch spreads over a pool of them) a malloc arena that
    reserves 64 MiB of address space at once: under RLIMIT_AS a few threads pass the limit before they hold any
    data. One arena for all threads keeps the limit a measure of memory used. (No-op where malloc is not glibc's.)"""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 1)


def _child(sender: Connection, function: Callable[..., Any], args: tuple[Any, ...], memory_bytes: int) -> None:
    _share_malloc_arenas()
    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        outcome: tuple[str, Any] = ("result", function(*args))
    except MemoryError:
        outcome = ("memory", None)
    except Exception as exc:  # noqa: BLE001  raised again in the caller
        outcome = ("error", exc)
    try:
        sender.send(outcome)
    except Exception as exc:  # noqa: BLE001  an exception that does not pickle
        sender.send(("error", RuntimeError(f"{type(outcome[1]).__name__}: {outcome[1]} ({exc})")))
    sender.close()


def _died(exit_code: int | None) -> IsolatedRunFailed:
    """A child killed by a signal (an allocation that aborts past the limit, the kernel's OOM killer) ran out of
    memory; one that exited of itself failed before it could run (a bug, never the input's doing)."""
    if exit_code is not None and exit_code < 0:
        return OutOfMemory(f"killed by signal {-exit_code}")
    return IsolatedRunFailed(f"the child process exited with code {exit_code} without a result")


def run_isolated(function: Callable[..., Any], args: tuple[Any, ...], memory_bytes: int, timeout_s: float) -> Any:
    """`function(*args)` run in a child: its result, or the exception it raised (pickled back); OutOfMemory or
    TimedOut when the child gave none, IsolatedRunFailed when it died otherwise. The child is killed once this
    returns."""
    _CONTEXT.set_forkserver_preload(["__main__", *_main_imports(), *_PRELOAD])  # read when the forkserver starts
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, function, args, memory_bytes), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise TimedOut(f"took longer than {timeout_s:g} s")
        try:
            kind, value = receiver.recv()
        except EOFError:
            process.join(5)
            raise _died(process.exitcode) from None
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()
    if kind == "memory":
        raise OutOfMemory(f"needed more than {memory_bytes} bytes of memory")
    if kind == "error":
        raise value
    return value
