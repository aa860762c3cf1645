"""Service processes of the local stack: each a console script of this virtualenv, with its own log file.

Each runs in a session of its own, so a terminal's Ctrl-C (SIGINT to the foreground process group) reaches only
`epochscope up`, which then stops the services, the broker and Postgres in that order."""

import os
import signal
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


class ServiceProcess:
    """One `epochscope-*` console script run as a subprocess; kill() is a crash, stop() a clean shutdown."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.command = [str(VENV_BIN / command[0]), *command[1:]]
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean-up code runs."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; returns the exit code."""
        self.terminate()
        return self.wait_stopped(timeout_s)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); `wait_stopped` waits for it."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = 20) -> int | None:
        """Wait for it to exit, SIGKILL it if it has not within `timeout_s`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
