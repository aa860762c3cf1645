"""One prediction round inside a real SFTTrainer LoRA run: ours inline, ours in the background (on a weight
snapshot, while training goes on), TRL's LogCompletionsCallback, and a naive one-prompt-at-a-time loop.

Two kinds of short training run (same model, data, LoRA and seed; fp32 on the CPU as the trainer runs
it), alternated `repeats` times in one process:

- inline: ours inline, TRL's callback and the naive loop all attached to the same run; at each round
  step the three run one after another (the order rotates every round), on the same weights, so they
  generate the same greedy answers and meet the same load from the rest of the machine;
- background: ours with `background=True`, a round every `background_interval` steps (the server's
  minimum step_interval), generating while training runs beside it.

The first round of every run is a warm-up and is left out. Measured the same way for every variant:

- training stall per round: time spent inside the variant's on_step_end hook at a round's step (the
  training loop waits for it);
- round wall time: that same hook time for the variants that generate inline; for ours in the
  background, the round's wall_ms from its RoundSummaryEvent (generation in the worker thread);
- tokens/s: tokens generated in the round (up to end-of-sequence) / round wall time. TRL returns text
  only, so its tokens are counted by re-tokenizing its completions.

Each row gives the median over rounds of ours and of the peer. TRL's callback runs as shipped, with
report_to=[]: it generates and builds its table as usual and logs it nowhere (no wandb, no comet); it
generates in batches of the trainer's per_device_eval_batch_size, SFTConfig's default (8); ours in
batches of 16 (GenerationSettings' default).

Usage: python bench/prediction_round.py [--smoke] [--results-dir DIR]
"""

import argparse
import statistics
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from common import RESULTS, ResultRow, print_table, write_results
from datasets import Dataset as HFDataset
from peft import LoraConfig
from prediction_round_callbacks import NaiveLoopCallback, TimedHooks
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    TrainerCallback,
)
from trl import LogCompletionsCallback, SFTConfig, SFTTrainer

from epochscope_runtime.catalog import demo_catalog
from epochscope_runtime.dataset_rows import Example, FileType, read_rows, training_record
from epochscope_runtime.sampler import Sample, select_samples
from epochscope_schemas.config import PredictionsConfig, SampleFrequency
from epochscope_schemas.events import Envelope, ModelSource, RoundSummaryEvent
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.generation import GenerationSettings
from epochscope_trainer.job.model_loading import resolve_model
from epochscope_trainer.job.predictions import prediction_rounds
from epochscope_trainer.job.predictions.triggers import RoundTriggers
from epochscope_trainer.job.prompts import render_prompt

NAME = "prediction_round"
ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "demo" / "data" / "train.jsonl"
MODEL_CACHE = ROOT / "bench" / ".cache" / "models"  # git-ignored: the GGUF converted once
DEMO_MODEL = "smollm2-135m-instruct"
SEED = 42
INLINE = ("ours_sync", "trl", "naive")
BACKGROUND = "ours_async"
TRL_NAME = "TRL LogCompletionsCallback"
NAIVE_NAME = "naive one-prompt-at-a-time loop"
TARGETS = {
    "round wall time, ours sync / TRL": "<= 0.8",
    "round wall time, ours sync / naive": "<= 0.3",
    "training stall per round, ours async / TRL": "<= 0.2",
}
LORA = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


@dataclass(frozen=True)
class Size:
    model: str  # DEMO_MODEL, or "tiny": the tests' tiny Llama
    prompts: int
    max_new_tokens: int
    interval: int  # training steps between the inline rounds
    background_interval: int  # training steps between the background rounds
    rounds: int  # measured rounds per run, after the warm-up round
    repeats: int  # runs of each kind, alternated
    batch_size: int  # training batch
    max_length: int  # training sequence length


FULL = Size(DEMO_MODEL, 16, 64, interval=2, background_interval=10, rounds=3, repeats=2, batch_size=4, max_length=256)
SMOKE = Size("tiny", 4, 8, interval=1, background_interval=1, rounds=1, repeats=1, batch_size=2, max_length=64)


@dataclass(frozen=True)
class Round:
    variant: str
    repeat: int
    step: int
    warmup: bool
    wall_s: float
    stall_s: float
    tokens: int


@dataclass(frozen=True)
class Setup:
    """What every training run shares."""

    size: Size
    model_path: str
    train: HFDataset
    samples: list[Sample]
    scratch: Path


def train_with(setup: Setup, kind: str, repeat: int) -> tuple[list[Round], dict[str, float]]:
    """One short LoRA training run: `kind` "inline" (the three inline variants) or "background" (ours in the
    background). Its rounds, measured, and each variant's on_train_end time."""
    size = setup.size
    interval = size.interval if kind == "inline" else size.background_interval
    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(setup.model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(setup.model_path, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(setup.scratch / f"{kind}-{repeat}"),
        max_steps=(size.rounds + 2) * interval - 1,  # training goes on after the last round (a background one)
        per_device_train_batch_size=size.batch_size,
        learning_rate=2e-4,
        max_length=size.max_length,
        logging_strategy="no",
        eval_strategy="no",
        save_strategy="no",
        report_to=[],
        bf16=False,
        activation_checkpointing=False,  # as the trainer runs on a CPU
        use_cpu=True,
        seed=SEED,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=setup.train, processing_class=tokenizer, peft_config=LORA
    )
    summaries: list[RoundSummaryEvent] = []

    def publish(_topic: str, event: Envelope) -> None:
        if isinstance(event, RoundSummaryEvent):
            summaries.append(event)

    config = PredictionsConfig(
        enabled=True,
        sample_count=len(setup.samples),
        sample_frequency=SampleFrequency.STEPS,
        step_interval=interval,
        max_new_tokens=size.max_new_tokens,
        temperature=0.0,
        seed=SEED,
        background=kind == "background",
        baseline_round=False,  # the peers have none
    )
    ours = prediction_rounds(config, setup.samples, tokenizer, publish, JobIdentity(uuid.uuid4(), "bench"))
    variants: dict[str, TrainerCallback] = {BACKGROUND: ours}
    if kind == "inline":
        trainer.eval_dataset = HFDataset.from_dict({"prompt": [sample.messages for sample in setup.samples]})
        generation_config = GenerationConfig(
            max_new_tokens=size.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        prompts = [render_prompt(sample, tokenizer) for sample in setup.samples]
        variants = {
            "ours_sync": ours,
            "trl": LogCompletionsCallback(trainer, generation_config=generation_config, freq=interval),
            "naive": NaiveLoopCallback(prompts, interval, size.max_new_tokens),
        }
    timer = TimedHooks(variants)
    trainer.add_callback(timer)
    trainer.train()

    first_step = interval
    rounds = []
    for name, callback in variants.items():
        stalls = timer.step_end_s[name]
        if isinstance(callback, RoundTriggers):
            walls = {s.step: s.wall_ms / 1000 if config.background else stalls[s.step] for s in summaries}
            tokens = {s.step: s.tokens_generated for s in summaries}
        elif isinstance(callback, LogCompletionsCallback):
            walls = {step: stalls[step] for step in {int(row[0]) for row in callback.table}}
            tokens = dict.fromkeys(walls, 0)
            for step, _prompt, completion in callback.table:
                tokens[int(step)] += len(tokenizer(completion, add_special_tokens=False)["input_ids"])
        else:
            assert isinstance(callback, NaiveLoopCallback)
            walls = {step: stalls[step] for step in callback.tokens}
            tokens = callback.tokens
        rounds += [
            Round(name, repeat, step, step == first_step, walls[step], stalls[step], tokens[step])
            for step in sorted(walls)
        ]
    return rounds, timer.train_end_s


def summary(rounds: list[Round]) -> dict[str, float]:
    """Medians per round over the measured rounds of every repeat, and tokens/s over all of them."""
    return {
        "rounds": len(rounds),
        "round_wall_s": statistics.median(r.wall_s for r in rounds),
        "stall_s": statistics.median(r.stall_s for r in rounds),
        "stall_s_max": max(r.stall_s for r in rounds),
        "tokens_per_round": statistics.fmean(r.tokens for r in rounds),
        "tokens_per_s": sum(r.tokens for r in rounds) / sum(r.wall_s for r in rounds),
    }


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
    rounds: list[Round] = []
    train_end_s: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        setup = Setup(
            size,
            load_model_path(size, scratch),
            HFDataset.from_list([training_record(example) for example in examples]),
            select_samples(examples, size.prompts, SEED),
            scratch,
        )
        for repeat in range(size.repeats):
            kinds = ("inline", "background") if repeat % 2 == 0 else ("background", "inline")
            for kind in kinds:
                measured, ended = train_with(setup, kind, repeat)
                rounds += measured
                train_end_s.append(ended)
                for r in measured:
                    print(
                        f"repeat {repeat} step {r.step:>3} {r.variant:<10} wall {r.wall_s:.2f}s stall {r.stall_s:.2f}s"
                    )
    measured_rounds = [r for r in rounds if not r.warmup]
    by_variant = {v: summary([r for r in measured_rounds if r.variant == v]) for v in (*INLINE, BACKGROUND)}
    sync, background = by_variant["ours_sync"], by_variant[BACKGROUND]
    trl, naive = by_variant["trl"], by_variant["naive"]
    rows = [
        ResultRow("round wall time, ours sync", "s", sync["round_wall_s"], trl["round_wall_s"], TRL_NAME),
        ResultRow("round wall time, ours sync", "s", sync["round_wall_s"], naive["round_wall_s"], NAIVE_NAME),
        ResultRow("training stall per round, ours async", "s", background["stall_s"], trl["stall_s"], TRL_NAME),
        ResultRow("training stall per round, ours sync", "s", sync["stall_s"], trl["stall_s"], TRL_NAME),
        ResultRow(
            "round wall time, ours async (beside training)",
            "s",
            background["round_wall_s"],
            trl["round_wall_s"],
            TRL_NAME,
        ),
        ResultRow("tokens/s, ours sync", "tokens/s", sync["tokens_per_s"], trl["tokens_per_s"], TRL_NAME),
        ResultRow("tokens/s, ours sync", "tokens/s", sync["tokens_per_s"], naive["tokens_per_s"], NAIVE_NAME),
        ResultRow("tokens/s, ours async", "tokens/s", background["tokens_per_s"], trl["tokens_per_s"], TRL_NAME),
    ]
    params = {
        **asdict(size),
        "dataset": str(DEMO_DATA.relative_to(ROOT)),
        "decoding": "greedy",
        "precision": "fp32",
        "lora": {"r": LORA.r, "alpha": LORA.lora_alpha, "dropout": LORA.lora_dropout, "target_modules": "all-linear"},
        "torch_threads": torch.get_num_threads(),
        "ours_batch": GenerationSettings.batch_size,
        "trl_batch": SFTConfig.per_device_eval_batch_size,
    }
    print_table(f"{NAME} ({size.model}, {size.prompts} prompts x {size.max_new_tokens} new tokens)", rows)
    return write_results(
        NAME,
        params,
        rows,
        results_dir,
        targets=TARGETS,
        variants=by_variant,
        rounds=[asdict(r) for r in rounds],
        train_end_s=train_end_s,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run with the tiny test model")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
