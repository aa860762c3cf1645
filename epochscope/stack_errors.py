"""Failures of the local stack that a user can fix, each told in one line: what went wrong and what to do."""

import errno
import os
import pwd
import socket
from pathlib import Path


class StackError(RuntimeError):
    """A part of the local stack failed to start; the message says what and how to fix it."""


def owner_name(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def require_owner(path: Path, uid: int) -> None:
    """Refuse a cluster folder owned by someone else: Postgres would fail later with a less helpful message."""
    if path.exists() and path.stat().st_uid != uid:
        expected = pwd.getpwuid(uid).pw_name
        raise StackError(
            f"{path} is owned by {owner_name(path)}, not {expected}; "
            "pass another --data-dir or --postgres-dir, or run as that user"
        )


def require_free_port(port: int, what: str, hint: str) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(f"port {port} for {what} is already in use on 127.0.0.1; {hint}") from exc


def explain_os_error(exc: OSError) -> str:
    """One line for an OSError raised while preparing the stack's folders and files."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"the disk is full{where}; free some space and try again"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}; choose a --data-dir you can write to"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}; choose a --data-dir on a writable disk"
    return f"{exc.strerror or exc}{where}"


def explain_postgres_failure(tool: str, output: str, data: Path, log: Path, port: int) -> str:
    """One line for a failed Postgres tool (initdb, pg_ctl, psql), from what it printed and the server's log."""
    if "No space left on device" in output:
        return f"the disk holding {data} is full; free some space and try again"
    if "could not bind" in output or "Address already in use" in output:
        return f"Postgres could not listen on 127.0.0.1:{port}, which is in use; stop what uses it and try again"
    if 'lock file "postmaster.pid" already exists' in output:
        return stale_lock_message(data)
    if "Permission denied" in output:
        return f"Postgres may not use {data} (permission denied); choose another --data-dir or --postgres-dir"
    first_line = next((line.strip() for line in output.splitlines() if line.strip()), "no output")
    return f"Postgres's {tool} failed ({first_line}); see {log}"


def stale_lock_message(data: Path) -> str:
    return (
        f"a stale lock file {data / 'postmaster.pid'} names a process that is not this cluster's Postgres; "
        "if no Postgres runs for this data directory, delete that file and try again"
    )


def check_lock_file(data: Path) -> None:
    """Before starting: a lock file whose process is a live Postgres means another stack uses this folder;
    one whose process is something else is stale (a crash, then the PID was reused) and Postgres would refuse."""
    lock = data / "postmaster.pid"
    try:
        pid = int(lock.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return
    try:
        executable = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        return  # the process is gone: Postgres removes such a lock file itself
    except PermissionError:
        executable = ""
    if Path(executable).name == "postgres":
        raise StackError(
            f"Postgres (PID {pid}) already runs for {data}: another `epochscope up` uses this data directory; "
            "stop it, or pass another --data-dir"
        )
    raise StackError(stale_lock_message(data))
