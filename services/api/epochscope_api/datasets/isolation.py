"""Run one function in a child process with a memory limit and a timeout, so that a runaway (a file that decodes
to far more than it weighs, a pathological template) ends that child, never the API process.

Children fork from a forkserver that has already imported the modules named with `preload` and those the main
module imports (a fork is then a few milliseconds, and inherits none of the API's threads or event loop). A child's
address space may grow by `memory_bytes` past what it holds when it starts (RLIMIT_AS): past it, an allocation fails
(MemoryError, or the child dies), and the caller gets OutOfMemory. Arguments and results travel pickled.
A FedRun's child reads its input from a pipe while the input still arrives.
"""

import asyncio
import ctypes
import fcntl
import gc
import io
import multiprocessing
import os
import queue
import resource
import sys
import threading
import time
import types
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_CONTEXT = multiprocessing.get_context("forkserver")
M_ARENA_MAX = -8  # glibc malloc.h: mallopt's parameter for the most arenas
F_SETPIPE_SZ = 1031  # fcntl.h (Linux): set a pipe's capacity
PIPE_BYTES = 1 << 20  # a FedRun's pipe capacity, where the system allows it (the default is 64 KiB)
READ_AHEAD_CHUNKS = 8  # pipe reads a FedRun's child holds ahead of the function's reads (8 MiB at most)
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
    gc.freeze()  # the forkserver's objects (the API's modules) left out of collections: touching them would copy
    # their pages, and the scan builds Python objects by the million (rows decoded in blocks, token batches)
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


def _start(function: Callable[..., Any], args: tuple[Any, ...], memory_bytes: int) -> tuple[Any, Connection]:
    """The child started on `function(*args)`, and the end its outcome comes back on."""
    _CONTEXT.set_forkserver_preload(["__main__", *_main_imports(), *_PRELOAD])  # read when the forkserver starts
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, function, args, memory_bytes), daemon=True)
    process.start()
    sender.close()
    return process, receiver


def _outcome(process: Any, receiver: Connection, memory_bytes: int, timeout_s: float) -> Any:
    """The child's result or its exception, waited for at most timeout_s; the child is killed once this returns."""
    try:
        if not receiver.poll(max(timeout_s, 0)):
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


def run_isolated(function: Callable[..., Any], args: tuple[Any, ...], memory_bytes: int, timeout_s: float) -> Any:
    """`function(*args)` run in a child: its result, or the exception it raised (pickled back); OutOfMemory or
    TimedOut when the child gave none, IsolatedRunFailed when it died otherwise. The child is killed once this
    returns."""
    process, receiver = _start(function, args, memory_bytes)
    return _outcome(process, receiver, memory_bytes, timeout_s)


class _ReadAhead(io.RawIOBase):
    """A pipe read by a thread of its own, up to READ_AHEAD_CHUNKS reads ahead of `readinto`: the writing side
    goes on while the function works on what it has read (a pipe holds 1 MiB at most, less than a JSONL block)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
        self._current = memoryview(b"")
        threading.Thread(target=self._fill, args=(fd,), daemon=True).start()

    def _fill(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, PIPE_BYTES):
                self._chunks.put(chunk)
            self._chunks.put(b"")
        except BaseException as exc:  # noqa: BLE001  raised again in the reading thread (a MemoryError)
            self._chunks.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._current:
            chunk = self._chunks.get()
            if isinstance(chunk, BaseException) or not chunk:
                self._chunks.put(chunk)  # the end, or the failure, for every later read too
                if isinstance(chunk, BaseException):
                    raise chunk
                return 0
            self._current = memoryview(chunk)
        taken = min(len(buffer), len(self._current))
        buffer[:taken] = self._current[:taken]
        self._current = self._current[taken:]
        return taken


def _read_feed(function: Callable[..., Any], source: Connection, *args: Any) -> Any:
    """`function(file, *args)`, `file` the read end of a FedRun's pipe, read ahead (the child ends with it)."""
    return function(io.BufferedReader(_ReadAhead(source.fileno()), PIPE_BYTES), *args)


class FedRun:
    """run_isolated for a function that reads its input while the input arrives: the child runs `function(file,
    *args)`, `file` a pipe that `write` fills; `result` ends the input and waits for the outcome. `timeout_s` bounds
    the time this side waits on the child in all: writes held up by a child that reads slower than the bytes come,
    then the wait for its result. A child that stops reading (it failed, or has its answer) takes no more input, and
    its outcome comes from `result`. Every FedRun ends with `result` or `cancel`."""

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...], memory_bytes: int, timeout_s: float):
        read_fd, self._fd = os.pipe()
        try:
            fcntl.fcntl(self._fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # past the system's pipe-max-size: the default capacity, more wake-ups
        os.set_blocking(self._fd, False)
        source = Connection(read_fd, writable=False)
        try:
            self._process, self._receiver = _start(_read_feed, (function, source, *args), memory_bytes)
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            source.close()
        self._memory_bytes, self._timeout_s, self._left_s = memory_bytes, timeout_s, timeout_s

    async def write(self, data: bytes) -> None:
        """Hand `data` to the child; waits while its pipe is full (within the timeout)."""
        view = memoryview(data)
        while view and self._fd >= 0:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await self._writable()
            except BrokenPipeError:
                self._end_input()

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = self._fd
        loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        started = time.monotonic()
        try:
            await asyncio.wait_for(ready, self._left_s)
        except TimeoutError:
            pass  # result() says it took too long
        finally:
            loop.remove_writer(fd)
            self._left_s -= time.monotonic() - started
        if self._left_s <= 0:
            self.cancel()

    def _end_input(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def result(self) -> Any:
        """What run_isolated returns or raises for the same function, once the input is complete."""
        self._end_input()
        if self._left_s <= 0:
            self.cancel()
            raise TimedOut(f"took longer than {self._timeout_s:g} s")
        outcome = asyncio.to_thread(_outcome, self._process, self._receiver, self._memory_bytes, self._left_s)
        try:
            return await outcome
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop the child, if it still runs; its outcome is dropped."""
        self._end_input()
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receiver.close()
