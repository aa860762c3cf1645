"""The Python client generated from the committed OpenAPI document (schemas/openapi.json), for tests.

`generated_client()` runs openapi-python-client once per test session and imports the package it
writes, so a test talks to the API exactly as a user of the published spec would.
"""

import atexit
import functools
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "schemas" / "openapi.json"
PACKAGE = "epochscope_client"
GENERATE_TIMEOUT_S = 300


@functools.cache
def generated_client() -> ModuleType:
    """The generated package (`epochscope_client`), with its `api` and `models` subpackages imported."""
    bin_dir = Path(sys.executable).parent  # the virtualenv's bin: openapi-python-client, and ruff, which it runs
    root = Path(tempfile.mkdtemp(prefix="epochscope-client-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(SPEC),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_S,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    # A part of the spec the generator cannot express is only a warning; for us it is a broken client.
    if result.returncode != 0 or "Warning" in result.stdout + result.stderr:
        raise RuntimeError(f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}")
    sys.path.insert(0, str(root))
    package = importlib.import_module(PACKAGE)
    for name in ("api", "models", "types"):
        importlib.import_module(f"{PACKAGE}.{name}")
    return package


def api_module(operation: str) -> ModuleType:
    """The generated module of one operation, by its tag and operationId, e.g. "jobs.create_job"."""
    generated_client()
    return importlib.import_module(f"{PACKAGE}.api.{operation}")
