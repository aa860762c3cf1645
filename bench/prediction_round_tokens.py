"""A prediction round's generated tokens/s against the floor this CPU allows for the model, and the round's time
against TRL's LogCompletionsCallback on the same prompts, measured side by side in one process.

One SFTTrainer is built (the demo model, fp32, the LoRA of bench/prediction_round.py) and trained a few steps (so
its adapters are no longer zero, and every kernel has run once: the warm-up); its model then answers the same
prompts, greedy, with the same max_new_tokens, by:
- ours: the trainer's own round callback (prediction_rounds, inline): render, generate (the prompts' shared
  beginning run once: job/generation_prefix.py), judge, publish;
- TRL: LogCompletionsCallback as shipped (report_to=[]), at its default batch size;
- ours_unfolded: ours with the LoRA adapters run as PEFT runs them (the fold's memory bound set to 0 from here):
  what folding them buys.
Each is called as the training loop calls it (on_step_end at a round's step) and timed: the time training waits,
and the CPU-seconds the process used meanwhile (the work: on the shared machine the wall time is mostly how the
scheduler shares the cores at that moment, so the CPU ratio is the steadier one).
Repeats alternate the order; before each repeat the machine's matmul and copy rates are measured again (the floor
moves with the machine's load, so each repeat's round is set against the rates of its own moment). Rows give the
median over repeats; `answers_identical` says whether ours and TRL's answers were the same text.

The floor: bench/prediction_round_floor.py (its docstring states the formula; docs/performance.md repeats it).

On the shared 2-core machine run it as bench/prediction_round.py was: OMP_WAIT_POLICY=PASSIVE nice -n 5 (spinning
OpenMP workers make a round 10-25x slower at a load of 14; the same for both sides, but the figures mean little).

Usage: python bench/prediction_round_tokens.py [--smoke] [--results-dir DIR]
"""

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, ResultRow, print_table, write_results
from datasets import Dataset as HFDataset
from prediction_round import LORA, SEED, TRL_NAME, demo_examples, load_model_path
from prediction_round_floor import MachineRates, ModelWork, measure_rates, round_floor
from prediction_round_runs import TRL_BATCH, Size
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, TrainerControl, TrainerState
from trl import LogCompletionsCallback, SFTConfig, SFTTrainer

from epochscope_runtime.dataset_rows import training_record
from epochscope_runtime.sampler import select_samples
from epochscope_schemas.config import PredictionsConfig, SampleFrequency
from epochscope_schemas.events import Envelope, PredictionEvent
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job import generation_lora
from epochscope_trainer.job.generation import GenerationSettings
from epochscope_trainer.job.predictions import prediction_rounds
from epochscope_trainer.job.prompts import render_prompt

NAME = "prediction_round_tokens"
FLOOR_NAME = "this CPU's floor for the model (roofline of measured matmul and copy rates)"
TARGETS = {"round time, ours inline / TRL": "<= 0.5", "generated tokens/s, ours / floor": "as high as it goes"}
FULL = Size("smollm2-135m-instruct", 4, 16, interval=1, rounds=1, tail_steps=0, repeats=5, batch_size=2, max_length=64)
SMOKE = Size("tiny", 4, 8, interval=1, rounds=1, tail_steps=0, repeats=1, batch_size=1, max_length=64)
RATE_SECONDS = 1.0
SIDES = ("ours", "trl", "ours_unfolded")
UNFOLDED_NAME = "ours with the LoRA adapters unfolded (as before issue 27)"
TRAIN_STEPS = 2


@dataclass(frozen=True)
class Measured:
    side: str  # "ours", "ours_unfolded" or "trl"
    repeat: int
    round_s: float
    cpu_s: float  # CPU-seconds the process used during the round (all its threads)
    tokens: int
    floor_s: float  # the roofline floor for the same prompts and answers, at this repeat's rates
    floor_compute_s: float
    floor_memory_s: float
    matmul_gflops: float
    copy_gbytes_per_s: float
    load_1m: float


class Sides:
    """Both round makers on one trainer, each called as the training loop calls it."""

    def __init__(self, size: Size, model_path: str, scratch: Path) -> None:
        torch.manual_seed(SEED)
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        examples = demo_examples()
        self.samples = select_samples(examples, size.prompts, SEED)
        self.args = SFTConfig(
            output_dir=str(scratch / "output"),
            max_steps=TRAIN_STEPS,
            per_device_train_batch_size=size.batch_size,
            learning_rate=2e-3,
            max_length=size.max_length,
            report_to=[],
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            seed=SEED,
            disable_tqdm=True,
        )
        train = HFDataset.from_list([training_record(example) for example in examples[:8]])
        self.trainer = SFTTrainer(
            model=model, args=self.args, train_dataset=train, processing_class=self.tokenizer, peft_config=LORA
        )
        self.trainer.train()
        self.trainer.model.train()  # as training leaves it at a round's step
        self.trainer.eval_dataset = HFDataset.from_dict({"prompt": [sample.messages for sample in self.samples]})
        generation = GenerationConfig(
            max_new_tokens=size.max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        self.trl = LogCompletionsCallback(self.trainer, generation_config=generation, freq=1)
        self.published: list[PredictionEvent] = []
        predictions = PredictionsConfig(
            enabled=True,
            sample_count=len(self.samples),
            sample_frequency=SampleFrequency.STEPS,
            step_interval=1,
            max_new_tokens=size.max_new_tokens,
            temperature=0.0,
            seed=SEED,
            baseline_round=False,
        )
        self.ours = prediction_rounds(
            predictions, self.samples, self.tokenizer, self._publish, JobIdentity(uuid.uuid4(), "bench")
        )
        self.step = 0

    def _publish(self, _topic: str, event: Envelope) -> None:
        if isinstance(event, PredictionEvent):
            self.published.append(event)

    def round(self, side: str) -> tuple[float, float, list[str], list[int]]:
        """(seconds training waited, CPU-seconds used, the answers, tokens generated per answer) of one round at a
        new step."""
        self.step += 1
        state = TrainerState(global_step=self.step, epoch=0.0)
        kwargs: dict[str, Any] = {"model": self.trainer.model, "processing_class": self.tokenizer}
        callback = self.trl if side == "trl" else self.ours
        self.published.clear()
        with _unfolded() if side == "ours_unfolded" else nullcontext():
            started, cpu_started = time.perf_counter(), time.process_time()
            callback.on_step_end(self.args, state, TrainerControl(), **kwargs)
            round_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        if side != "trl":
            events = sorted(self.published, key=lambda event: event.sample_index)
            return round_s, cpu_s, [event.prediction for event in events], [event.tokens_generated for event in events]
        answers = [row[2] for row in self.trl.table if int(row[0]) == self.step]
        return round_s, cpu_s, [answer.strip() for answer in answers], [self._answer_tokens(a) for a in answers]

    def _answer_tokens(self, answer: str) -> int:
        return len(self.tokenizer(answer, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self) -> list[int]:
        return [self._answer_tokens(render_prompt(sample, self.tokenizer)) for sample in self.samples]


@contextmanager
def _unfolded() -> Iterator[None]:
    bound = generation_lora.FOLD_MAX_BYTES
    generation_lora.FOLD_MAX_BYTES = 0
    try:
        yield
    finally:
        generation_lora.FOLD_MAX_BYTES = bound


def measured(side: str, repeat: int, sides: Sides, work: ModelWork, rates: MachineRates) -> tuple[Measured, list[str]]:
    load = os.getloadavg()[0]
    round_s, cpu_s, answers, tokens = sides.round(side)
    prompts = sides.prompt_tokens()
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])  # the floor in batches of similar length
    batch = TRL_BATCH if side == "trl" else GenerationSettings.batch_size
    floor = round_floor(work, rates, [prompts[i] for i in order], [tokens[i] for i in order], batch)
    row = Measured(
        side,
        repeat,
        round_s,
        cpu_s,
        sum(tokens),
        floor.roofline_s,
        floor.compute_s,
        floor.memory_s,
        rates.matmul_gflops,
        rates.copy_gbytes_per_s,
        round((load + os.getloadavg()[0]) / 2, 2),
    )
    return row, answers


def median(runs: list[Measured], side: str, value: Any) -> float:
    return statistics.median(value(run) for run in runs if run.side == side)


def result_rows(runs: list[Measured]) -> list[ResultRow]:
    def load(*sides: str) -> float:
        return round(statistics.fmean(run.load_1m for run in runs if run.side in sides), 2)

    def rate(side: str, name: str) -> ResultRow:
        ours = median(runs, side, lambda run: run.tokens / run.round_s)
        floor = median(runs, side, lambda run: run.tokens / run.floor_s)
        return ResultRow(
            f"generated tokens/s in a round, {name}", "tokens/s", ours, floor, FLOOR_NAME, "higher", load(side)
        )

    def versus(metric: str, figure: Callable[[Measured], float], peer: str, peer_name: str) -> ResultRow:
        ours, theirs = median(runs, "ours", figure), median(runs, peer, figure)
        return ResultRow(metric, "s", ours, theirs, peer_name, "lower", load("ours", peer))

    waits = "round time (training waits), ours inline"
    round_s, cpu_s = attrgetter("round_s"), attrgetter("cpu_s")
    round_time = versus(waits, round_s, "trl", TRL_NAME)
    round_cpu = versus("round CPU-seconds (the process, all threads), ours inline", cpu_s, "trl", TRL_NAME)
    unfolded = versus(waits, round_s, "ours_unfolded", UNFOLDED_NAME)
    return [rate("ours", "ours inline"), rate("trl", TRL_NAME), round_time, round_cpu, unfolded]


def run(size: Size, results_dir: Path) -> Path:
    began = time.monotonic()
    runs: list[Measured] = []
    identical = True
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-") as scratch:
        sides = Sides(size, load_model_path(size, Path(scratch)), Path(scratch))
        config = sides.trainer.model.config
        work = ModelWork.of(config)
        batch = min(size.prompts, GenerationSettings.batch_size)
        for repeat in range(size.repeats):
            rates = measure_rates(config.hidden_size, config.intermediate_size, batch, RATE_SECONDS)
            answers: dict[str, list[str]] = {}
            for side in SIDES if repeat % 2 == 0 else tuple(reversed(SIDES)):
                row, answers[side] = measured(side, repeat, sides, work, rates)
                runs.append(row)
                print(
                    f"repeat {repeat} {side:<4} round {row.round_s:6.2f}s cpu {row.cpu_s:5.2f}s tokens {row.tokens}"
                    f" floor {row.floor_s:.2f}s ({rates.matmul_gflops} GFLOP/s, {rates.copy_gbytes_per_s} GB/s)"
                    f" load {row.load_1m}",
                    flush=True,
                )
            identical = identical and answers["ours"] == answers["trl"] == answers["ours_unfolded"]
    rows = result_rows(runs)
    params = {
        **{name: getattr(size, name) for name in ("model", "prompts", "max_new_tokens", "repeats")},
        "decoding": "greedy",
        "precision": "fp32",
        "lora": {"r": LORA.r, "alpha": LORA.lora_alpha, "target_modules": "all-linear"},
        "trained_steps": TRAIN_STEPS,
        "model_params_per_token": work.params,
        "answers_identical": identical,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "matmul_gflops_by_shape_last_repeat": rates.matmul_gflops_by_shape,
        "ours_batch": GenerationSettings.batch_size,
        "trl_batch": TRL_BATCH,
        "niceness": os.nice(0),
        "bench_wall_s": round(time.monotonic() - began, 1),
    }
    print_table(f"{NAME} ({size.model}, {size.prompts} prompts x {size.max_new_tokens} new tokens)", rows)
    return write_results(NAME, params, rows, results_dir, targets=TARGETS, runs=[asdict(run) for run in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run with the tiny test model")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
