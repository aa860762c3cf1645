"""Units: each failure of the local stack that a user can fix is told in one line saying what and how."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from epochscope.stack_errors import (
    StackError,
    check_lock_file,
    explain_os_error,
    explain_postgres_failure,
    require_owner,
)

DATA = Path("/srv/stack/postgres/data")
LOG = Path("/srv/stack/postgres/postgres.log")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('FATAL:  could not write to file "pg_wal/xlogtemp.12": No space left on device', "disk holding"),
        ('LOG:  could not bind IPv4 address "127.0.0.1": Address already in use', "in use"),
        ('FATAL:  lock file "postmaster.pid" already exists', "stale lock file"),
        ('initdb: error: could not create directory "/srv/stack/postgres/data": Permission denied', "may not use"),
        ("pg_ctl: could not start server\nExamine the log output.", "pg_ctl failed (pg_ctl: could not start server)"),
    ],
)
def test_postgres_failures_are_one_line_with_the_fix(output: str, expected: str) -> None:
    message = explain_postgres_failure("pg_ctl", output, DATA, LOG, 5433)
    assert expected in message
    assert "\n" not in message


def test_os_errors_name_the_problem_and_the_path() -> None:
    full = explain_os_error(OSError(errno.ENOSPC, "No space left on device", "/srv/stack/secrets.json"))
    assert full == "the disk is full (/srv/stack/secrets.json); free some space and try again"
    denied = explain_os_error(PermissionError(errno.EACCES, "Permission denied", "/srv/stack"))
    assert "permission denied (/srv/stack)" in denied and "--data-dir" in denied


def test_a_lock_file_of_a_live_process_that_is_not_postgres_is_stale(tmp_path: Path) -> None:
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")
    with pytest.raises(StackError, match="stale lock file .*delete that file"):
        check_lock_file(tmp_path)


def test_a_lock_file_of_a_gone_process_is_left_to_postgres(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "postmaster.pid").write_text(f"{gone.pid}\n")
    check_lock_file(tmp_path)  # Postgres removes a lock file whose process is gone
    check_lock_file(tmp_path / "missing")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_folder_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    os.chown(folder, 65534, -1)
    with pytest.raises(StackError, match=r"data is owned by (nobody|uid 65534), not root; pass another --data-dir"):
        require_owner(folder, 0)
