"""`epochscope up` starts the whole stack with one command and Ctrl-C (SIGINT) stops all of it."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import traversable_temp_dir

from epochscope.ports import free_port

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent


def test_up_serves_the_api_and_sigint_stops_everything() -> None:
    data_dir = traversable_temp_dir("epochscope-up-") / "data"
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
    assert not (data_dir / "postgres" / "data" / "postmaster.pid").exists()  # Postgres shut down cleanly
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
