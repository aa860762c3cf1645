"""Shared fixtures: the real local stack (Postgres, Tansu, API, writer, trainer) and a tiny model."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_model import tiny_catalog

from epochscope.local_stack import LocalStack

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


UPLOAD_MAX_BYTES = 2 << 20  # small, so the oversized-upload tests stay quick; the other uploads fit under it
DATASET_ROW_MAX_BYTES = 1 << 20
DATASET_FILE_MAX_DECODED_BYTES = 256 << 20


@pytest.fixture(scope="session")
def full_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-stack-"))  # private (0700), as a newcomer's would be
    stack = LocalStack(
        root,
        extra_env={
            "EPOCHSCOPE_WRITER_LINGER_MS": "20",
            "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.5",
            "EPOCHSCOPE_UPLOAD_MAX_BYTES": str(UPLOAD_MAX_BYTES),
            # Row and file budgets under the upload limit, so that test_upload_budgets.py passes them with small files.
            "EPOCHSCOPE_DATASET_ROW_MAX_BYTES": str(DATASET_ROW_MAX_BYTES),
            "EPOCHSCOPE_DATASET_FILE_MAX_DECODED_BYTES": str(DATASET_FILE_MAX_DECODED_BYTES),
            # The fuzzer writes hundreds of times a minute as one user; the quotas have their own stack's tests.
            "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": "100000",
        },
        models=tiny_catalog(tiny_model_dir),
    )
    try:
        with stack:
            yield stack
    finally:
        # Keep the services' logs for CI: test-artifacts/stack-logs/<pytest-xdist worker>/.
        if stack.logs.exists():
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            shutil.copytree(stack.logs, ARTIFACTS / "stack-logs" / worker, dirs_exist_ok=True)
        stack.delete_data()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(Path(tempfile.mkdtemp(prefix="epochscope-tiny-model-")) / "model")
