"""Shared fixtures: the real local stack (Postgres, Tansu, API, writer, trainer) and a tiny model."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import file_seconds
import pytest
from tiny_model import tiny_catalog

from epochscope.local_stack import LocalStack

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


UPLOAD_MAX_BYTES = 2 << 20  # small, so the oversized-upload tests stay quick; the other uploads fit under it
DATASET_ROW_MAX_BYTES = 1 << 20
DATASET_FILE_MAX_DECODED_BYTES = 256 << 20


# The only tests that may skip under CI=true, and why; any other skip there is a failure (a skip that depends on the
# machine would hide a test that never ran). By "file::test" (every parametrization of it).
SKIPS_ALLOWED_IN_CI = {
    "tests/test_fresh_clone.py::test_the_stack_runs_a_job_from_a_clone_in_a_private_folder": (
        "as root only: the failure it guards against (Postgres cannot enter a private clone) needs root"
    ),
    "tests/test_local_stack.py::test_a_cluster_folder_owned_by_someone_else_is_one_line": (
        "as root only: only root can give a folder to another user"
    ),
    "tests/test_stack_errors.py::test_a_folder_owned_by_someone_else_is_refused": (
        "as root only: only root can give a folder to another user"
    ),
    "tests/test_trainer_warm_launcher.py::test_the_identity_reaches_only_the_jobs_child": (
        "as root only: reading the warm process's memory needs CAP_SYS_PTRACE (it is not dumpable)"
    ),
}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true, a skip not in SKIPS_ALLOWED_IN_CI is reported as a failure, with the skip's reason."""
    report = yield
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        if item.nodeid.split("[", 1)[0] not in SKIPS_ALLOWED_IN_CI:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, not in SKIPS_ALLOWED_IN_CI (tests/conftest.py): {reason}"
    return report


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On pytest-xdist's workers the slowest files of the last full run come first (tests/file_seconds.py): with
    `--dist loadfile --no-loadscope-reorder` a free worker takes the next file in this order, so the long files start
    early and the short ones even out the workers' ends. A run without xdist keeps pytest's order."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        order = file_seconds.slowest_first([item.nodeid for item in items], file_seconds.load())
        items[:] = [items[index] for index in order]
