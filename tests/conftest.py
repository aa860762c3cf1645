"""Shared fixtures: the real local stack (Postgres, Tansu, API, writer, trainer) and a tiny model."""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from epochscope.local_stack import LocalStack

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


UPLOAD_MAX_BYTES = 2 << 20  # small, so the oversized-upload tests stay quick; the other uploads fit under it


def tiny_catalog(model_dir: Path) -> str:
    """EPOCHSCOPE_MODELS with the tiny test model, whose tokenizer the API counts uploads' tokens with."""
    entry = {
        "id": "tiny",
        "display_name": "Tiny test model",
        "source": f"dir:{model_dir}",
        "tokenizer_dir": str(model_dir),
        "parameters": 100_000,
        "context_length": 256,
        "chat_template": True,
        "tokens_per_second": 100,
    }
    return json.dumps([entry])


@pytest.fixture(scope="session")
def full_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-stack-"))  # private (0700), as a newcomer's would be
    env = {
        "EPOCHSCOPE_WRITER_LINGER_MS": "20",
        "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.5",
        # Datasets: a folder store and the tiny model's catalog (to move into epochscope/local_stack.py's defaults).
        "EPOCHSCOPE_STORE_LOCAL_DIR": str(root / "objects"),
        "EPOCHSCOPE_MODELS": tiny_catalog(tiny_model_dir),
        "EPOCHSCOPE_UPLOAD_MAX_BYTES": str(UPLOAD_MAX_BYTES),
    }
    stack = LocalStack(root, extra_env=env)
    try:
        with stack:
            yield stack
    finally:
        # Keep the services' logs for CI: test-artifacts/stack-logs/.
        if stack.logs.exists():
            shutil.copytree(stack.logs, ARTIFACTS / "stack-logs", dirs_exist_ok=True)
        stack.delete_data()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(Path(tempfile.mkdtemp(prefix="epochscope-tiny-model-")) / "model")
