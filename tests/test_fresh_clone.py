"""A fresh clone in a folder only its owner may enter (as `mktemp -d` makes, and as /root is), with its own
virtualenv inside it, run as a newcomer runs it: `epochscope up`, the demo data uploaded and a job submitted over
HTTP, completed with predictions.

As root this is the case that once failed: Postgres runs as an unprivileged user, which cannot enter the
clone (nor the embedded Postgres binaries in its .venv). As a normal user everything runs as that user, so there is
nothing to reproduce.

The clone's virtualenv is this checkout's, hard-linked (copied across filesystems), with the clone's own packages
installed over it (editable, as `make install` installs them): a whole `make install` here would repeat what
`make test` on a fresh clone has just done, the same command from the same files, for 1 to 2 minutes.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ARTIFACTS
from tiny_model import TINY_MODEL_ID, tiny_catalog_file

from epochscope.ports import free_port

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the private-folder failure happens only as root"),
]

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # this checkout's virtualenv, which `make install` (or `make test`) built
INSTALL_TIMEOUT_S = 300
JOB_TIMEOUT_S = 300


def install_venv(clone: Path) -> None:
    """clone/.venv: this checkout's virtualenv, hard-linked when on the same filesystem (nothing in it is written in
    place: pip replaces files), with the clone's packages installed over it so that its scripts and imports are the
    clone's own. The list of packages is the Makefile's."""
    assert sys.prefix != sys.base_prefix, "pytest runs from the checkout's virtualenv"
    same_filesystem = VENV.stat().st_dev == clone.stat().st_dev
    subprocess.run(["cp", "-al" if same_filesystem else "-a", str(VENV), str(clone / ".venv")], check=True)
    packages = re.search(r"^PACKAGES := (.*)$", (clone / "Makefile").read_text(), re.MULTILINE)
    assert packages, "the Makefile's PACKAGES line"
    pip = [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", "--no-deps"]
    command = [*pip, "--no-build-isolation", *packages[1].split(), "-e", "."]
    install = subprocess.run(command, cwd=clone, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]


@pytest.fixture(scope="module")
def private_clone() -> Iterator[Path]:
    """`git clone` of this repository's HEAD into a fresh 0700 folder, with its own virtualenv."""
    private = Path(tempfile.mkdtemp(prefix="epochscope-clone-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    clone = private / "r"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        started = time.monotonic()
        install_venv(clone)
        print(f"the private clone's virtualenv: {time.monotonic() - started:.0f}s")
        yield clone
    finally:
        data = clone / ".epochscope"
        if (clone / ".venv" / "bin" / "epochscope").exists():
            subprocess.run([str(clone / ".venv" / "bin" / "epochscope"), "reset", "--data-dir", str(data)])
        # The clone's virtualenv (80,000 files) goes in the background: the other tests need not wait for the unlinks.
        subprocess.Popen(["rm", "-rf", str(private)], start_new_session=True)


def wait_ready(url: str, up: subprocess.Popen[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert up.poll() is None, f"epochscope up exited: {up.communicate()[0]}"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the stack was not ready after {timeout_s}s")


def test_the_stack_runs_a_job_from_a_clone_in_a_private_folder(private_clone: Path, tiny_model_dir: Path) -> None:
    private = private_clone.parent
    model = shutil.copytree(tiny_model_dir, private / "model")  # the model, too, only root may reach
    catalog = tiny_catalog_file(model, private / "models.json")
    bin_dir = private_clone / ".venv" / "bin"
    data = private_clone / ".epochscope"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = subprocess.Popen(
        [str(bin_dir / "epochscope"), "up", "--api-port", str(port), "--data-dir", str(data), "--models", str(catalog)],
        cwd=private_clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_ready(url, up)
        token = subprocess.run(
            [str(bin_dir / "epochscope"), "token", "--user", "newcomer", "--data-dir", str(data)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        train = private_clone / "demo" / "data" / "train.jsonl"
        uploaded = client.post("/v1/datasets", files={"file": (train.name, train.read_bytes())})
        assert uploaded.status_code == 201, uploaded.text
        config = {
            "model": TINY_MODEL_ID,
            "dataset_id": uploaded.json()["dataset_id"],
            "num_epochs": 1,
            "batch_size": 8,
            "max_length": 256,  # the demo rows' answers come after ~100 tiny-tokenizer tokens of system and user turns
            "predictions": {"enabled": True, "sample_count": 2, "max_new_tokens": 8},
        }
        created = client.post("/v1/jobs", json=config)
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job still {job['status']} after {JOB_TIMEOUT_S}s"
            time.sleep(1)
        assert job["status"] == "completed", job.get("status_message")
        predictions = client.get(f"/v1/jobs/{job_id}/predictions").json()["items"]
        assert {row["round_index"] for row in predictions} == {0, 1}  # the baseline round and epoch 1
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
        assert up.returncode == 0, output
    finally:
        if up.poll() is None:
            up.kill()
        if data.joinpath("logs").exists():
            shutil.copytree(data / "logs", ARTIFACTS / "fresh-clone-logs", dirs_exist_ok=True)
    # Nothing was loosened on the way: the private folder and the checkout keep their modes.
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert not private_clone.stat().st_mode & stat.S_IWOTH
