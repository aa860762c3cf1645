"""bench/train_throughput.py, run tiny (--smoke): it trains through the trainer's SFT method, counts the tokens as
the upload does, and writes its rates against the catalog's figure in the shape of bench/result.schema.json."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from epochscope.demo import BATCH_SIZE
from epochscope_runtime.catalog import DEFAULT_TRAIN_TOKENS_PER_SECOND

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_train_throughput_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "train_throughput.py"), "--smoke", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((tmp_path / "train_throughput.json").read_text())
    jsonschema.validate(document, json.loads((BENCH / "result.schema.json").read_text()))
    figures = document["figures"]
    assert (figures["model"], figures["steps"], document["params"]["smoke"]) == ("tiny", 2, True)
    assert figures["batch_size"] == BATCH_SIZE  # the demo job's batch: 2 steps of it, of the 96 rows
    assert figures["trained_tokens"] == round(figures["dataset_tokens"] * 2 * BATCH_SIZE / 96)
    rounding = 0.005 / figures["wall_s"]  # wall_s is written to 0.01 s: on a fast machine a run lasts well under 1 s
    rate = figures["trained_tokens"] / figures["wall_s"]
    assert figures["train_tokens_per_second"] == pytest.approx(rate, rel=0.01 + rounding)
    for row in document["rows"]:  # the tiny model is not in the demo catalog: the default
        assert row["peer"] == DEFAULT_TRAIN_TOKENS_PER_SECOND and row["ours"] > 0 and row["better"] == "higher"
