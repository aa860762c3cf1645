"""`epochscope up` starts the whole stack with one command and Ctrl-C (SIGINT) stops all of it; a failure
the user can fix is one line and a non-zero exit; the admin role needs its generated password."""

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from epochscope.local_stack import LocalStack
from epochscope.ports import free_port
from epochscope.postgres import PostgresCluster
from epochscope.postgres_install import cluster_uid

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A stack data folder in a private (0700) temp folder; its cluster is deleted afterwards."""
    path = Path(tempfile.mkdtemp(prefix="epochscope-up-")) / "data"
    yield path
    LocalStack(path).delete_data()
    path.parent.rmdir()


def epochscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "epochscope"), *args], capture_output=True, text=True, timeout=120)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_up_serves_the_api_and_sigint_stops_everything(data_dir: Path) -> None:
    port = free_port()
    up = subprocess.Popen(
        [str(BIN / "epochscope"), "up", "--api-port", str(port), "--writers", "2", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        token = subprocess.run(
            [str(BIN / "epochscope"), "token", "--user", "alice", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        response = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        logs = {path.name for path in (data_dir / "logs").iterdir()}
        assert {"api.log", "broker.log", "writer-0.log", "writer-1.log", "trainer-0.log"} <= logs
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, output
    assert not (PostgresCluster.for_stack(data_dir).data / "postmaster.pid").exists()  # Postgres shut down cleanly
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_port_in_use_is_one_line(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = epochscope("up", "--api-port", str(port), "--data-dir", str(data_dir))
    assert_one_line_failure(result, f"port {port} for the API is already in use")


def test_a_running_or_stale_postgres_lock_is_one_line(data_dir: Path) -> None:
    cluster = PostgresCluster.for_stack(data_dir)
    cluster.start()
    try:
        result = epochscope("up", "--api-port", str(free_port()), "--data-dir", str(data_dir))
        assert_one_line_failure(result, "already runs for")
    finally:
        cluster.stop()
    # A crash left the lock file and its PID now belongs to another process (here: this test).
    (cluster.data / "postmaster.pid").write_text(f"{os.getpid()}\n{cluster.data}\n")
    result = epochscope("up", "--api-port", str(free_port()), "--data-dir", str(data_dir))
    assert_one_line_failure(result, "stale lock file")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the cluster folder to another user")
def test_a_cluster_folder_owned_by_someone_else_is_one_line(data_dir: Path) -> None:
    home = PostgresCluster.for_stack(data_dir).home
    home.mkdir(parents=True)
    os.chown(home, 65534, -1)
    result = epochscope("up", "--api-port", str(free_port()), "--data-dir", str(data_dir))
    assert_one_line_failure(result, "is owned by")


async def test_the_admin_role_needs_the_generated_password(full_stack: LocalStack) -> None:
    cluster = full_stack.postgres
    password_file = cluster.password_file.stat()
    assert stat.S_IMODE(password_file.st_mode) == 0o600 and password_file.st_uid == cluster_uid()
    assert "trust" not in (cluster.data / "pg_hba.conf").read_text()
    for password in (None, "wrong"):
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres", password=password)
    conn = await asyncpg.connect(cluster.admin_url)
    assert await conn.fetchval("SELECT current_user") == "postgres"
    await conn.close()


def on_a_tiny_disk(mount_point: Path, command: list[str]) -> list[str]:
    """`command` in a mount namespace of its own where `mount_point` is a 4 MiB tmpfs: too small for a Postgres
    cluster. As root a mount namespace; as a user a user namespace too, keeping its capabilities (mount needs
    them). The tmpfs goes with the namespace: nothing to unmount, even after a crash."""
    as_user = [] if os.geteuid() == 0 else ["--user", "--map-current-user", "--keep-caps"]
    mount_then_run = 'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"'
    return ["unshare", *as_user, "--mount", "sh", "-c", mount_then_run, str(mount_point), *command]


def test_a_full_disk_is_one_line(data_dir: Path) -> None:
    tiny_disk = Path(tempfile.mkdtemp(prefix="epochscope-full-disk-"))  # in /tmp: the Postgres user can reach it
    up = [str(BIN / "epochscope"), "up", "--api-port", str(free_port()), "--data-dir", str(data_dir)]
    command = on_a_tiny_disk(tiny_disk, [*up, "--postgres-dir", str(tiny_disk / "pg")])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        tiny_disk.rmdir()  # empty outside the namespace
    assert_one_line_failure(result, "is full")
