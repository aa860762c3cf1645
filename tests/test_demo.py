"""`epochscope demo` (the SFT job): what it must still show while it stays short. Its job, as the CLI's defaults
make it, is valid under the server's default limits and has a baseline round and at least two learned rounds within
its training on the demo data; a stack started for the demo reads the demo model's tokenizer from the converted model
the trainer will load (converted while the stack starts, not on the job's clock)."""

import math
from pathlib import Path

from epochscope.demo import DEMO_DIR, argument_parser, demo_job_config, round_table
from epochscope.model_catalog import with_tokenizers
from epochscope_runtime.catalog import DEMO_MODEL_ID, demo_catalog
from epochscope_schemas.config import JobConfig, PredictionLimits, SampleFrequency, limit_violations

TRAIN_ID, SAMPLES_ID = "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"


def default_demo_job() -> JobConfig:
    args = argument_parser().parse_args([])
    return JobConfig.model_validate(demo_job_config(TRAIN_ID, SAMPLES_ID, args.epochs, args.samples))


def test_the_demo_job_has_a_baseline_and_two_learned_rounds_within_its_training() -> None:
    config = default_demo_job()
    assert limit_violations(config, PredictionLimits()) == []  # the API takes it as submitted
    rows = len((DEMO_DIR / "data" / "train.jsonl").read_text().splitlines())
    steps = math.ceil(rows / config.batch_size) * config.num_epochs
    predictions = config.predictions
    assert predictions.enabled and predictions.baseline_round
    assert predictions.sample_frequency == SampleFrequency.STEPS
    learned_rounds = steps // predictions.step_interval
    assert learned_rounds >= 2, f"{steps} steps, a round every {predictions.step_interval}"
    assert steps % predictions.step_interval == 0  # the last round sees the last step: no training goes unshown
    assert predictions.sample_count >= 4 and predictions.samples_dataset_id is not None
    graders = {grader.name for grader in predictions.graders}
    assert {"json_schema", "city", "country", "nights", "chrf"} <= graders  # what the round tables are graded by


def test_a_round_table_says_when_it_was_shown() -> None:
    rows = [
        {"epoch": 0.5, "step": 12, "sample_index": 0, "sample_id": "row-000000", "ground_truth": "{}",
         "prediction": "{}", "valid": True, "scores": {"exact_match": 1.0}},
    ]  # fmt: skip
    assert round_table(1, rows, elapsed_s=93.4).title == (
        "Round 1: epoch 0.5, step 12 - 1/1 exact, 1/1 valid JSON bookings (93s)"
    )


def test_a_stack_for_the_demo_reads_the_tokenizer_from_the_model_the_trainer_loads(tmp_path: Path) -> None:
    converted = tmp_path / "models" / DEMO_MODEL_ID
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")  # as the conversion leaves it: the trainer's first job skips it
    (model,) = with_tokenizers(demo_catalog(), tmp_path / "tokenizers", model_cache=tmp_path / "models")
    assert model.tokenizer_dir == str(converted)
    assert not (tmp_path / "tokenizers").exists()  # no second extraction of the tokenizer from the GGUF
