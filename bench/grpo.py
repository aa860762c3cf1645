"""GRPO on the demo task: each training step's wall time split into generation, reward and update; the training
stall that rollout logging adds, against TRL's own `log_completions` on the same run; the reward per step.

One in-process GRPO run of the trainer's own method (`GroupRelativePolicyOptimization.build_trainer`: LoRA on the
demo model, fp32 on the CPU as the trainer runs it) on the demo prompts (demo/data/train.jsonl), rewarded by the demo's
booking field graders (`json_field` city, country, nights, each a third), every completion logged as a rollout, and
TRL's `log_completions` switched on in the same run (its rich table of every completion, printed at each logged
step, report_to=[] as the trainer sets it). Events go to an in-memory queue, as the trainer's publisher takes them.

Per step: `step` is on_step_begin to on_step_end; `generate+score` is GRPOTrainer._generate_and_score_completions
(with our rollout logging inside it); `reward` is its _calculate_rewards (the graders); `rollout logging` is our
recorder and reward watch (RolloutEvents built, bounded and queued; pass rates; the divergence check); generation is
generate+score less reward and rollout logging (TRL's generate, its log-probabilities and advantages); update is the
step less generate+score (the loss, backward and optimizer step). TRL's `log_completions` runs in GRPOTrainer.log()
after on_step_end, timed whole: its rich table printed and its parquet of the step's completions written, with the
metrics averaging and the on_log callbacks (the trainer's progress event among them, a few ms) included. Rows give
the median over the steps after the first. Writes bench/results/grpo.json and the reward-per-step chart
docs/screenshots/grpo_reward.svg.

Usage: python bench/grpo.py [--smoke] [--results-dir DIR] [--chart PATH]
(--smoke: the tiny test model, 3 short steps.)
"""

import argparse
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, ResultRow, print_table, write_results
from datasets import Dataset as HFDataset
from grpo_chart import reward_chart_svg
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from epochscope_runtime.catalog import demo_catalog
from epochscope_runtime.dataset_rows import Example, FileType, read_rows
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import ModelSource
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.methods import TrainingParts
from epochscope_trainer.job.methods.grpo import GroupRelativePolicyOptimization
from epochscope_trainer.job.methods.grpo_rows import prompt_record
from epochscope_trainer.job.model_loading import resolve_model
from epochscope_trainer.job.precision import this_machine

NAME = "grpo"
ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "demo" / "data" / "train.jsonl"
MODEL_CACHE = ROOT / "bench" / ".cache" / "models"  # git-ignored: the GGUF converted once
CHART = ROOT / "docs" / "screenshots" / "grpo_reward.svg"
DEMO_MODEL = "smollm2-135m-instruct"
FIELDS = ("city", "country", "nights")
TRL_NAME = "TRL log_completions (log(): rich table + parquet, same run)"


@dataclass(frozen=True)
class Size:
    model: str  # the demo model's catalog id, or "tiny": the tests' tiny Llama
    steps: int
    prompts_per_step: int
    num_generations: int
    max_completion_length: int


FULL = Size(DEMO_MODEL, steps=5, prompts_per_step=1, num_generations=4, max_completion_length=24)
SMOKE = Size("tiny", steps=3, prompts_per_step=2, num_generations=2, max_completion_length=8)


class StepClock(TrainerCallback):
    """Seconds per step by part: `measure(part, fn)` wraps a function to add its time to the current step's part."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self._current: dict[str, float] = defaultdict(float)
        self._began = 0.0

    def measure(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._current[part] += time.perf_counter() - began

        return timed

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.steps:  # TRL's log of the step before ran after its on_step_end: it belongs there
            self.steps[-1]["trl_log_completions"] = self._current.get("trl_log_completions", 0.0)
        self._current = defaultdict(float)
        self._began = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        parts = dict(self._current)
        self._current = defaultdict(float)
        self.steps.append({"step": time.perf_counter() - self._began, **parts, "load_1m": os.getloadavg()[0]})

    def finish(self) -> None:
        if self.steps:
            self.steps[-1]["trl_log_completions"] = self._current.get("trl_log_completions", 0.0)


def job_config(size: Size) -> JobConfig:
    """The demo job's model settings (LoRA r 16) with a GRPO method rewarded by the booking's fields."""
    graders = [{"type": "json_field", "name": field, "path": field} for field in FIELDS]
    method = {
        "type": "grpo",
        "rewards": [{"grader": field} for field in FIELDS],
        "num_generations": size.num_generations,
        "max_completion_length": size.max_completion_length,
        "max_steps": size.steps,
        "rollouts": {"log": "all"},
    }
    return JobConfig.model_validate(
        {
            "model": size.model,
            "dataset_id": str(uuid.uuid4()),
            "batch_size": size.prompts_per_step * size.num_generations,
            "learning_rate": 5e-4,
            "lora": {"r": 16, "alpha": 32},
            "method": method,
            "predictions": {"graders": graders, "seed": 7},
        }
    )


def load_model_path(size: Size, scratch: Path) -> str:
    if size.model == "tiny":
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_model import build_tiny_model

        return str(build_tiny_model(scratch / "tiny-model"))
    (entry,) = [model for model in demo_catalog() if model.id == size.model]
    return resolve_model(ModelSource(id=entry.id, source=entry.source), MODEL_CACHE)


def demo_prompts() -> HFDataset:
    with DEMO_DATA.open("rb") as handle:
        examples = [row for row in read_rows(handle, FileType.JSONL) if isinstance(row, Example)]
    return HFDataset.from_list([prompt_record(example) for example in examples])


def train(size: Size, scratch: Path) -> tuple[StepClock, list[Any]]:
    """The GRPO run, timed; the clock and the events it published."""
    model_path = load_model_path(size, scratch)
    events: queue.Queue[Any] = queue.Queue()
    clock = StepClock()
    parts = TrainingParts(
        config=job_config(size),
        model=AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32),
        tokenizer=AutoTokenizer.from_pretrained(model_path),
        train_rows=demo_prompts(),
        eval_rows=None,
        precision=this_machine(),
        output_dir=scratch / "out",
        logging_steps=1,
        callbacks=[clock],
        publish=lambda _topic, event: events.put_nowait(event),
        job=JobIdentity(uuid.uuid4(), "bench-token"),
        text_max_bytes=64 << 10,
    )
    trainer = GroupRelativePolicyOptimization().build_trainer(parts)
    trainer.log_completions = True  # TRL's own completions log, in the same run (as GRPOConfig would set it up)
    (parts.output_dir / "completions").mkdir(parents=True, exist_ok=True)
    trainer._generate_and_score_completions = clock.measure(
        "generate_and_score", trainer._generate_and_score_completions
    )
    trainer._calculate_rewards = clock.measure("reward", trainer._calculate_rewards)
    trainer.rollouts.record = clock.measure("rollout_logging", trainer.rollouts.record)
    trainer.reward_watch.observe = clock.measure("rollout_logging", trainer.reward_watch.observe)
    trainer.log = clock.measure("trl_log_completions", trainer.log)
    trainer.train()
    clock.finish()
    return clock, [events.get_nowait() for _ in range(events.qsize())]


def split(step: dict[str, float]) -> dict[str, float]:
    """A step's wall time by part (seconds)."""
    return {
        "step": step["step"],
        "generation": step["generate_and_score"] - step["reward"] - step["rollout_logging"],
        "reward": step["reward"],
        "update": step["step"] - step["generate_and_score"],
        "rollout_logging": step["rollout_logging"],
        "trl_log_completions": step.get("trl_log_completions", 0.0),
        "load_1m": step["load_1m"],
    }


def reward_per_step(events: list[Any]) -> list[dict[str, Any]]:
    """Each step's mean total reward and mean score per component, over all its completions."""
    by_step: dict[int, list[Any]] = defaultdict(list)
    for event in events:
        if type(event).__name__ == "RolloutEvent":
            by_step[event.step].append(event)
    return [
        {
            "step": step,
            "reward": statistics.fmean(r.reward or 0.0 for r in rollouts),
            **{f: statistics.fmean((r.rewards.get(f) or 0.0) for r in rollouts) for f in FIELDS},
        }
        for step, rollouts in sorted(by_step.items())
    ]


def result_rows(steps: list[dict[str, float]]) -> list[ResultRow]:
    measured = steps[1:] or steps  # the first step warms up (allocations, first generation)
    load = round(statistics.fmean(step["load_1m"] for step in measured), 2)

    def median(part: str) -> float:
        return round(statistics.median(step[part] for step in measured), 4)

    whole = median("step")
    rows = [
        ResultRow(f"{part} per step, share of the step", "s", median(part), whole, "the whole step", "lower", load)
        for part in ("generation", "reward", "update")
    ]
    logging = ResultRow(
        "training stall per step from rollout logging",
        "s",
        median("rollout_logging"),
        median("trl_log_completions"),
        TRL_NAME,
        "lower",
        load,
    )
    return [*rows, logging]


def run(size: Size, results_dir: Path, chart: Path | None) -> Path:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-grpo-") as scratch:
        clock, events = train(size, Path(scratch))
    steps = [split(step) for step in clock.steps]
    rewards = reward_per_step(events)
    for step in steps:
        print({name: round(value, 3) for name, value in step.items()}, flush=True)
    rows = result_rows(steps)
    if chart is not None:
        chart.write_text(reward_chart_svg(rewards, FIELDS, f"GRPO on the demo task ({size.model}): reward per step"))
    params = {
        **asdict(size),
        "dataset": str(DEMO_DATA.relative_to(ROOT)),
        "rewards": [f"json_field {field}" for field in FIELDS],
        "precision": "bf16" if this_machine().bf16 else "fp32",
        "device": this_machine().device,
        "torch_threads": torch.get_num_threads(),
        "bench_wall_s": round(time.monotonic() - began, 1),
        "smoke": size.model == "tiny",
    }
    print_table(f"{NAME} ({size.model}, {size.steps} steps)", rows)
    return write_results(NAME, params, rows, results_dir, steps=steps, reward_per_step=rewards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run with the tiny test model")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--chart", type=Path, help=f"the reward chart's SVG (default: {CHART.relative_to(ROOT)})")
    args = parser.parse_args()
    chart = args.chart or (None if args.smoke else CHART)
    print(run(SMOKE if args.smoke else FULL, args.results_dir, chart))


if __name__ == "__main__":
    main()
