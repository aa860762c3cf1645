"""A job's child runs as the trainer's user, but cannot read the trainer's environment (its key, the broker's
credentials) through /proc/<ppid>/environ: the trainer makes itself undumpable (issue 23, item 9).

Run as root, every process here drops all its capabilities first, so it is what a job's child of a non-root trainer
is: the same user, nothing more (root's CAP_SYS_PTRACE reads any process's memory, undumpable or not)."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from start_keys import DISPATCH_PUBLIC_KEY, TRAINER_IDENTITY_KEY

from epochscope.ports import free_port

BIN = Path(sys.executable).parent
SAME_USER = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"] if os.geteuid() == 0 else []
SECRET = TRAINER_IDENTITY_KEY  # the trainer's identity private key: must stay in the trainer


def environ_of(pid: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*SAME_USER, "cat", f"/proc/{pid}/environ"], capture_output=True, timeout=30)


def started(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*SAME_USER, *command], env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    time.sleep(3)  # past its start-up (the trainer retries the absent broker meanwhile)
    assert process.poll() is None
    return process


def test_a_trainers_environment_is_not_readable_by_a_process_of_its_user() -> None:
    env = {
        "EPOCHSCOPE_TRAINER_IDENTITY_KEY": SECRET,
        "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS": DISPATCH_PUBLIC_KEY,
        "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    with tempfile.TemporaryDirectory() as work_dir:
        env["EPOCHSCOPE_TRAINER_WORK_DIR"] = env["EPOCHSCOPE_STORE_LOCAL_DIR"] = work_dir
        control = started(["sleep", "60"], env)  # any other process of the user: readable
        trainer = started([str(BIN / "epochscope-trainer")], env)
        try:
            readable = environ_of(control.pid)
            assert readable.returncode == 0 and SECRET.encode() in readable.stdout
            refused = environ_of(trainer.pid)
            assert refused.returncode != 0 and b"Permission denied" in refused.stderr
            assert SECRET.encode() not in refused.stdout
        finally:
            for process in (control, trainer):
                process.terminate()
                process.wait(30)
