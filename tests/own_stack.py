"""A local stack of a test module's own (its settings differ from the shared `full_stack`), removed afterwards."""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tiny_model import tiny_catalog

from epochscope.local_stack import LocalStack


@contextmanager
def own_stack(prefix: str, tiny_model_dir: Path, env: dict[str, str], **counts: Any) -> Iterator[LocalStack]:
    """A running stack with the tiny model's catalog and `env`; `counts`: writers=..., trainers=..."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    stack = LocalStack(root, extra_env=env, models=tiny_catalog(tiny_model_dir), **counts)
    try:
        with stack:
            yield stack
    finally:
        stack.delete_data()
        shutil.rmtree(root, ignore_errors=True)
