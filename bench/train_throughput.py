"""Training throughput for the catalog (`train_tokens_per_second`): the trainer's own SFT method on the demo job.

The demo job's config (epochscope/demo.py: LoRA r16, batch 4, max_length 256) trains for one epoch of the demo
data (96 rows, 24 steps) through the trainer's SupervisedFineTuning.build_trainer, fp32 on the CPU as the trainer
runs it. The tokens are counted the way the upload report stores them (the API's TokenCounter: each row's rendered
prompt plus its answer), so the figure divides exactly what the estimate multiplies. Two rates:

- whole epoch: the dataset's tokens / trainer.train()'s wall time (the first step's warm-up included, as in a job);
- steady: the tokens of steps 2..N (the mean row's tokens x their rows) / their time.

On a shared machine the wall time measures the neighbours as much as the model, so the run also records the
process's CPU seconds (user + system) during training and torch's threads: tokens / (CPU seconds / threads) is the
rate the same machine would give with those threads to itself ("unshared"; an upper bound, as if both threads were
busy throughout). The catalog takes the wall figure of a quiet machine, or the unshared one where none was quiet.
Model loading and conversion are outside all of them (a job's start-up). Each result row sets a measured rate
against the catalog's figure for the model (ratio: measured / catalog).

`--steps N` trains N steps instead of the epoch (a shorter run on a busy machine; its tokens are the mean row's
tokens x the rows its steps read).

Usage: python bench/train_throughput.py [--model demo|tiny] [--steps N] [--smoke] [--results-dir DIR]
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, ResultRow, write_results
from datasets import Dataset

from epochscope.demo import demo_job_config
from epochscope_api.datasets.token_counts import load_token_counter
from epochscope_runtime.catalog import DEFAULT_TRAIN_TOKENS_PER_SECOND, DEMO_MODEL_ID, demo_catalog
from epochscope_runtime.dataset_rows import Example, FileType, read_rows, training_record
from epochscope_runtime.sampler import to_sample
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import ModelSource
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.methods import TrainingParts
from epochscope_trainer.job.methods.sft import SupervisedFineTuning
from epochscope_trainer.job.model_loading import load_model_and_tokenizer, resolve_model
from epochscope_trainer.job.precision import this_machine

NAME = "train_throughput"
ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "demo" / "data" / "train.jsonl"
MODEL_CACHE = ROOT / "bench" / ".cache" / "models"  # git-ignored: the GGUF converted once


class StepClock:
    """The wall time at each step's end (a TrainerCallback, duck-typed: TRL calls what it finds)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def model_path(model: str, scratch: Path) -> tuple[str, str]:
    """(catalog id, folder) of the model to train."""
    if model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import TINY_MODEL_ID, build_tiny_model

        return TINY_MODEL_ID, str(build_tiny_model(scratch / "tiny-model"))
    (entry,) = [entry for entry in demo_catalog() if entry.id == DEMO_MODEL_ID]
    return entry.id, resolve_model(ModelSource(id=entry.id, source=entry.source), MODEL_CACHE)


def run(model: str, steps: int | None) -> dict[str, Any]:
    """One training run of `steps` (None: one epoch) on the demo data; its figures."""
    with DEMO_DATA.open("rb") as handle:
        examples = [row for row in read_rows(handle, FileType.JSONL) if isinstance(row, Example)]
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        model_id, folder = model_path(model, scratch)
        precision = this_machine()
        loaded, tokenizer = load_model_and_tokenizer(folder, precision.torch_dtype())
        tokenizer.save_pretrained(scratch / "tokenizer")
        counter = load_token_counter(scratch / "tokenizer")
        samples = [to_sample(example, index) for index, example in enumerate(examples)]
        dataset_tokens = sum(counter.count_prompt(s) + counter.count([s.ground_truth or ""])[0] for s in samples)
        config = JobConfig.model_validate(
            {**demo_job_config(str(uuid.uuid4()), str(uuid.uuid4()), 1, 4), "model": model_id}
        )
        clock = StepClock()
        parts = TrainingParts(
            config=config,
            model=loaded,
            tokenizer=tokenizer,
            train_rows=Dataset.from_list([training_record(example) for example in examples]),
            eval_rows=None,
            precision=precision,
            output_dir=scratch / "output",
            logging_steps=1000,
            callbacks=[clock],
            publish=lambda _topic, _event: None,
            job=JobIdentity(job_id="bench", job_token="bench"),
            text_max_bytes=1 << 16,
        )
        trainer = SupervisedFineTuning().build_trainer(parts)
        trainer.args.max_steps = steps or -1
        load_start = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        trainer.train()
        wall_s, cpu_s = time.perf_counter() - started, _cpu_seconds() - cpu_started
        load_end = os.getloadavg()[0]
    steps_run = len(clock.ends)
    rows_read = min(steps_run * config.batch_size, len(examples))
    tokens = dataset_tokens * rows_read / len(examples)
    steady_s = clock.ends[-1] - clock.ends[0]
    steady_tokens = dataset_tokens * (rows_read - config.batch_size) / len(examples)
    threads = torch.get_num_threads()
    return {
        "model": model_id,
        "steps": steps_run,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "lora_r": config.lora.r if config.lora else None,
        "precision": precision.label,
        "torch_threads": threads,
        "dataset_tokens": dataset_tokens,
        "trained_tokens": round(tokens),
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "seconds_per_step": round(wall_s / steps_run, 2),
        "train_tokens_per_second": round(tokens / wall_s, 1),
        "steady_train_tokens_per_second": round(steady_tokens / steady_s, 1) if steady_s else None,
        "unshared_train_tokens_per_second": round(tokens / (cpu_s / threads), 1),
        "load_average_1m": round((load_start + load_end) / 2, 2),
    }


def result_rows(figures: dict[str, Any], catalog_rate: float) -> list[ResultRow]:
    """The measured rates against the rate the catalog gives the model (what the estimate assumes)."""
    peer = f"the catalog's train_tokens_per_second for {figures['model']}"
    return [
        ResultRow(metric, "tokens/s", figures[key], catalog_rate, peer, load_average_1m=figures["load_average_1m"])
        for metric, key in (
            ("training throughput, wall time", "train_tokens_per_second"),
            ("training throughput, CPU time / torch threads (unshared)", "unshared_train_tokens_per_second"),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("demo", "tiny"), default="demo")
    parser.add_argument("--steps", type=int, help="Train this many steps instead of one epoch.")
    parser.add_argument("--smoke", action="store_true", help="The tiny model, 2 steps.")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    model, steps = ("tiny", 2) if args.smoke else (args.model, args.steps)
    figures = run(model, steps)
    catalog = {entry.id: entry.train_tokens_per_second for entry in demo_catalog()}
    catalog_rate = catalog.get(figures["model"], DEFAULT_TRAIN_TOKENS_PER_SECOND)
    params = {key: figures[key] for key in ("model", "steps", "batch_size", "max_length", "lora_r", "precision")}
    path = write_results(
        NAME, params | {"smoke": args.smoke}, result_rows(figures, catalog_rate), args.results_dir, figures=figures
    )
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
