"""Running a benchmark tiny (--smoke) and checking the result file it writes, for the tests/test_bench_smoke*.py files
(one file per group of benchmarks, so that pytest-xdist can run the groups on different workers)."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

BENCH = Path(__file__).resolve().parent.parent / "bench"
RESULT_SCHEMA = json.loads((BENCH / "result.schema.json").read_text())


def check_schema(document: dict) -> None:
    jsonschema.Draft202012Validator.check_schema(RESULT_SCHEMA)
    jsonschema.validate(document, RESULT_SCHEMA, cls=jsonschema.Draft202012Validator)


def run_smoke(script: str, results_dir: Path, timeout: int = 300, models: Path | None = None) -> dict:
    """Run bench/<script> --smoke into `results_dir` (on the model catalog in the file `models`, where given: the
    worker's tiny model, already built); return the JSON document it wrote."""
    catalog = ["--models", str(models)] if models else []
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", "--results-dir", str(results_dir), *catalog],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = results_dir.glob("*.json")
    document = json.loads(path.read_text())
    check_schema(document)
    return document
