"""What prediction rounds cost a real SFTTrainer LoRA run: the training's whole wall time with rounds (and their
checkpoints) against the same training without, ours (inline and in the background) against TRL's
LogCompletionsCallback and a naive one-prompt-at-a-time loop.

Every variant is its own short training run of the same model, data, LoRA, seed and steps (fp32 on the CPU as the
trainer runs it), so the weights at each step, hence the greedy answers and the tokens generated, are the same; the
rounds fall at the same steps with the same prompts and max_new_tokens (the run's `variants` record each one's
tokens, to show it). Runs are repeated, each repeat in another order (rotated, reversed every other repeat), after
one untimed warm-up run.

- none: no rounds, the baseline;
- ours_inline / ours_background: the trainer's prediction rounds, `background` false / true (a background round
  generates on a weight snapshot in a thread of the same process, on the same cores, while training goes on);
- trl: TRL's LogCompletionsCallback as shipped, report_to=[] (it builds its table and logs it nowhere);
- naive: eval mode, then one prompt at a time;
- *_ckpt: the same with a checkpoint at every round and at the end: ours through the trainer's Checkpointer
  (`every_round`, into a folder object store: local save, SHA-256 and upload in its thread), TRL's with
  save_pretrained of the same weights at the same steps (no upload: less work than ours).

A run's wall time is trainer.train() (its on_train_end waits for a background round in flight) plus, with
checkpoints, the final save and the uploads' end. The cost of rounds is a run's wall time minus the same repeat's
`none` run, so every row's ours and peer come from the same repeats; rows give the median over repeats. The
training's wait inside the callback at a round's step (round hook time) is reported for the inline variants only:
for a background round it is not what the round costs.

Usage: python bench/prediction_round.py [--smoke] [--results-dir DIR]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from common import RESULTS, ResultRow, print_table, write_results
from datasets import Dataset as HFDataset
from peft import LoraConfig
from prediction_round_runs import TRL_BATCH, RunSetup, Size, TrainingRun, train_once

from epochscope_runtime.catalog import demo_catalog
from epochscope_runtime.dataset_rows import Example, FileType, read_rows, training_record
from epochscope_runtime.sampler import select_samples
from epochscope_schemas.events import ModelSource
from epochscope_trainer.job.generation import GenerationSettings
from epochscope_trainer.job.model_loading import resolve_model

NAME = "prediction_round"
ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "demo" / "data" / "train.jsonl"
MODEL_CACHE = ROOT / "bench" / ".cache" / "models"  # git-ignored: the GGUF converted once
DEMO_MODEL = "smollm2-135m-instruct"
SEED = 42
VARIANTS = (
    "none",
    "ours_inline",
    "ours_background",
    "trl",
    "naive",
    "ours_inline_ckpt",
    "ours_background_ckpt",
    "trl_ckpt",
)
TRL_NAME = "TRL LogCompletionsCallback"
TRL_CKPT_NAME = "TRL LogCompletionsCallback + save_pretrained each round"
NAIVE_NAME = "naive one-prompt-at-a-time loop"
NONE_NAME = "the same training without rounds"
TARGETS = {
    "round hook time, ours inline / TRL": "<= 0.8",
    "round hook time, ours inline / naive": "<= 0.3",
    "training time added by the rounds, ours background / TRL": "<= 0.2",
}
LORA = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")

FULL = Size(DEMO_MODEL, 4, 16, interval=2, rounds=2, tail_steps=2, repeats=2, batch_size=1, max_length=64)
SMOKE = Size("tiny", 4, 8, interval=2, rounds=2, tail_steps=1, repeats=1, batch_size=2, max_length=64)


def run_order(repeat: int) -> list[str]:
    """Each repeat in another order: rotated by the repeat, reversed every other repeat."""
    order = list(VARIANTS) if repeat % 2 == 0 else list(reversed(VARIANTS))
    shift = repeat % len(order)
    return order[shift:] + order[:shift]


def added_s(runs: list[TrainingRun], variant: str, baseline: str = "none") -> float:
    """The median over repeats of (the variant's wall time - the same repeat's baseline run's)."""
    walls = {(run.variant, run.repeat): run.wall_s for run in runs}
    repeats = sorted({run.repeat for run in runs})
    return statistics.median(walls[(variant, r)] - walls[(baseline, r)] for r in repeats)


def median_of(runs: list[TrainingRun], variant: str, what: str) -> float:
    return statistics.median(getattr(run, what) for run in runs if run.variant == variant)


def load_during(runs: list[TrainingRun], *variants: str) -> float:
    """The 1-minute load average over the runs a row compares (mean of each run's start and end)."""
    loads = [load for run in runs if run.variant in variants for load in (run.load_1m_start, run.load_1m_end)]
    return round(statistics.fmean(loads), 2)


def result_rows(runs: list[TrainingRun], rounds: int) -> list[ResultRow]:
    added = f"training time added by {rounds} rounds"

    def row(metric: str, unit: str, ours: float, peer: float, peer_name: str, *variants: str) -> ResultRow:
        return ResultRow(metric, unit, ours, peer, peer_name, load_average_1m=load_during(runs, "none", *variants))

    return [
        row(
            f"{added}, ours background",
            "s",
            added_s(runs, "ours_background"),
            added_s(runs, "trl"),
            TRL_NAME,
            "ours_background",
            "trl",
        ),
        row(
            f"{added}, ours inline",
            "s",
            added_s(runs, "ours_inline"),
            added_s(runs, "trl"),
            TRL_NAME,
            "ours_inline",
            "trl",
        ),
        row(
            f"{added}, ours inline",
            "s",
            added_s(runs, "ours_inline"),
            added_s(runs, "naive"),
            NAIVE_NAME,
            "ours_inline",
            "naive",
        ),
        row(
            f"{added} and their checkpoints, ours background",
            "s",
            added_s(runs, "ours_background_ckpt"),
            added_s(runs, "trl_ckpt"),
            TRL_CKPT_NAME,
            "ours_background_ckpt",
            "trl_ckpt",
        ),
        row(
            f"{added} and their checkpoints, ours inline",
            "s",
            added_s(runs, "ours_inline_ckpt"),
            added_s(runs, "trl_ckpt"),
            TRL_CKPT_NAME,
            "ours_inline_ckpt",
            "trl_ckpt",
        ),
        row(
            f"training wall time with {rounds} rounds, ours background",
            "s",
            median_of(runs, "ours_background", "wall_s"),
            median_of(runs, "none", "wall_s"),
            NONE_NAME,
            "ours_background",
        ),
        row(
            f"training wall time with {rounds} rounds, TRL",
            "s",
            median_of(runs, "trl", "wall_s"),
            median_of(runs, "none", "wall_s"),
            NONE_NAME,
            "trl",
        ),
        row(
            "round hook time (training waits), ours inline",
            "s",
            median_of(runs, "ours_inline", "hook_s_per_round"),
            median_of(runs, "trl", "hook_s_per_round"),
            TRL_NAME,
            "ours_inline",
            "trl",
        ),
        row(
            "round hook time (training waits), ours inline",
            "s",
            median_of(runs, "ours_inline", "hook_s_per_round"),
            median_of(runs, "naive", "hook_s_per_round"),
            NAIVE_NAME,
            "ours_inline",
            "naive",
        ),
    ]


def load_model_path(size: Size, scratch: Path) -> str:
    if size.model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import build_tiny_model

        return str(build_tiny_model(scratch / "tiny-model"))
    (entry,) = [model for model in demo_catalog() if model.id == size.model]
    return resolve_model(ModelSource(id=entry.id, source=entry.source), MODEL_CACHE)


def demo_examples() -> list[Example]:
    with DEMO_DATA.open("rb") as handle:
        return [row for row in read_rows(handle, FileType.JSONL) if isinstance(row, Example)]


def run(size: Size, results_dir: Path) -> Path:
    examples = demo_examples()
    runs: list[TrainingRun] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        setup = RunSetup(
            size,
            load_model_path(size, scratch),
            HFDataset.from_list([training_record(example) for example in examples]),
            select_samples(examples, size.prompts, SEED),
            scratch,
            LORA,
            SEED,
        )
        train_once(setup, "none", -1)  # warm-up, a whole run untimed: first imports, allocations, page cache
        for repeat in range(size.repeats):
            for variant in run_order(repeat):
                measured = train_once(setup, variant, repeat)
                runs.append(measured)
                print(
                    f"repeat {repeat} {variant:<21} wall {measured.wall_s:7.2f}s tokens {measured.tokens}"
                    f" load {measured.load_1m_start:.2f}->{measured.load_1m_end:.2f}",
                    flush=True,
                )
    rows = result_rows(runs, size.rounds)
    tokens = {variant: sorted({run.tokens for run in runs if run.variant == variant}) for variant in VARIANTS}
    params = {
        **asdict(size),
        "max_steps": size.rounds * size.interval + size.tail_steps,
        "dataset": str(DEMO_DATA.relative_to(ROOT)),
        "decoding": "greedy",
        "precision": "fp32",
        "lora": {"r": LORA.r, "alpha": LORA.lora_alpha, "dropout": LORA.lora_dropout, "target_modules": "all-linear"},
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "ours_batch": GenerationSettings.batch_size,
        "trl_batch": TRL_BATCH,
        "niceness": os.nice(0),
        "bench_wall_s": round(time.monotonic() - began, 1),
    }
    print_table(f"{NAME} ({size.model}, {size.prompts} prompts x {size.max_new_tokens} new tokens)", rows)
    return write_results(
        NAME, params, rows, results_dir, targets=TARGETS, tokens_per_run=tokens, runs=[asdict(r) for r in runs]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run with the tiny test model")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
