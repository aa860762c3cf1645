"""A backup restores (issue 23, item 10): `epochscope backup` of a stopped stack with a finished job, `epochscope
restore` into a new folder, and the new stack serves the job's predictions and its checkpoint, byte for byte."""

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tiny_model import TINY_MODEL_ID, tiny_catalog
from uploads import chat_rows

from epochscope.local_stack import LocalStack

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="epochscope-backup-"))
    yield path
    for name in ("original", "restored"):
        LocalStack(path / name).delete_data()
    shutil.rmtree(path, ignore_errors=True)


def finished_job(client: httpx.Client) -> str:
    upload = client.post("/v1/datasets", files={"file": ("train.jsonl", chat_rows(), "application/octet-stream")})
    assert upload.status_code == 201, upload.text
    config = {
        "model": TINY_MODEL_ID,
        "dataset_id": upload.json()["dataset_id"],
        "num_epochs": 2,
        "batch_size": 4,
        "max_length": 64,
        "predictions": {
            "enabled": True,
            "sample_count": 2,
            "max_new_tokens": 4,
            "checkpoints": {"mode": "every_round"},
        },
    }
    created = client.post("/v1/jobs", json=config)
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    deadline = time.monotonic() + 300
    while (status := client.get(f"/v1/jobs/{job_id}").json()["status"]) not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert status == "completed"
    return job_id


def served(client: httpx.Client, job_id: str) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The job's predictions and, per checkpoint, the SHA-256 of each file in its download (a tar made per request)."""
    predictions = client.get(f"/v1/jobs/{job_id}/predictions", params={"limit": 500})
    assert predictions.status_code == 200, predictions.text
    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints").json()["items"]
    downloads = {}
    for checkpoint in checkpoints:
        response = client.get(f"/v1/jobs/{job_id}/checkpoints/{checkpoint['checkpoint_id']}/download")
        assert response.status_code == 200, response.text
        with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
            files = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
            downloads[checkpoint["checkpoint_id"]] = {
                name: hashlib.sha256(file.read()).hexdigest() for name, file in files.items() if file
            }
    return predictions.json()["items"], downloads


def epochscope(*args: str) -> str:
    result = subprocess.run([str(BIN / "epochscope"), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_backup_restores_into_a_new_stack_with_predictions_and_checkpoints(root: Path, tiny_model_dir: Path) -> None:
    models = tiny_catalog(tiny_model_dir)
    original = LocalStack(root / "original", models=models)
    with original, httpx.Client(base_url=original.api_url, timeout=60) as client:
        client.headers["Authorization"] = f"Bearer {original.mint_token('alice')}"
        job_id = finished_job(client)
        predictions, checkpoints = served(client, job_id)
    assert predictions and checkpoints

    epochscope("backup", "--data-dir", str(root / "original"), "-o", str(root / "backup"))
    epochscope("restore", str(root / "backup"), "--data-dir", str(root / "restored"))
    LocalStack(root / "original").delete_data()  # nothing of the original is left to serve from

    restored = LocalStack(root / "restored", models=models)
    with restored, httpx.Client(base_url=restored.api_url, timeout=60) as client:
        client.headers["Authorization"] = f"Bearer {restored.mint_token('alice')}"  # the backup's secrets
        assert served(client, job_id) == (predictions, checkpoints)
        client.headers["Authorization"] = f"Bearer {restored.mint_token('bob')}"
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404  # row-level security came back too


def test_a_running_stack_or_an_existing_folder_is_refused(root: Path) -> None:
    result = subprocess.run(
        [str(BIN / "epochscope"), "restore", str(root), "--data-dir", str(root / "restored")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "is not a finished backup" in result.stderr
