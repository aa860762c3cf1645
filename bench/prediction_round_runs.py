"""One timed training run of the prediction_round benchmark, with one variant's rounds (or none) attached.

The trainer names imported here (the bench's whole coupling to the trainer's internals): prediction_rounds and
RoundTriggers (epochscope_trainer.job.predictions), JobIdentity (epochscope_trainer.child_protocol), Checkpointer
(epochscope_trainer.job.checkpointing) and render_prompt (epochscope_trainer.job.prompts).
"""

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset as HFDataset
from obstore.store import LocalStore
from peft import LoraConfig
from prediction_round_callbacks import NaiveLoopCallback, SaveEveryRound, TimedHooks
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, TrainerCallback
from trl import LogCompletionsCallback, SFTConfig, SFTTrainer

from epochscope_runtime.sampler import Sample
from epochscope_schemas.checkpoints import CheckpointMode, CheckpointsConfig
from epochscope_schemas.config import PredictionsConfig, SampleFrequency
from epochscope_schemas.events import Envelope, RoundSummaryEvent
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.checkpointing import Checkpointer
from epochscope_trainer.job.predictions import prediction_rounds
from epochscope_trainer.job.predictions.triggers import RoundTriggers
from epochscope_trainer.job.prompts import render_prompt

TRL_BATCH = SFTConfig.per_device_eval_batch_size  # TRL's callback generates in batches of this (8); ours of 16


@dataclass(frozen=True)
class Size:
    model: str  # the demo model's catalog id, or "tiny": the tests' tiny Llama
    prompts: int
    max_new_tokens: int
    interval: int  # training steps between rounds
    rounds: int  # per run, at steps interval, 2 x interval, ...
    tail_steps: int  # training steps after the last round (a background round runs beside them)
    repeats: int  # runs of each variant
    batch_size: int  # training batch
    max_length: int  # training sequence length


@dataclass(frozen=True)
class RunSetup:
    """What every training run shares."""

    size: Size
    model_path: str
    train: HFDataset
    samples: list[Sample]
    scratch: Path
    lora: LoraConfig
    seed: int


@dataclass(frozen=True)
class TrainingRun:
    variant: str
    repeat: int  # -1: the warm-up
    wall_s: float  # trainer.train(), plus the final checkpoint and the uploads' end where there are checkpoints
    rounds: int
    tokens: int  # generated in all its rounds, up to end-of-sequence
    hook_s_per_round: float  # mean time inside the variant's on_step_end at a round's step
    load_1m_start: float
    load_1m_end: float


def train_once(setup: RunSetup, variant: str, repeat: int) -> TrainingRun:
    """One short LoRA training run with `variant`'s rounds attached, timed."""
    size = setup.size
    torch.manual_seed(setup.seed)
    tokenizer = AutoTokenizer.from_pretrained(setup.model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(setup.model_path, dtype=torch.float32)
    folder = setup.scratch / f"{variant}-{repeat}"
    args = SFTConfig(
        output_dir=str(folder / "output"),
        max_steps=size.rounds * size.interval + size.tail_steps,
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
        seed=setup.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=setup.train, processing_class=tokenizer, peft_config=setup.lora
    )
    attached = _Attached(setup, variant, trainer, tokenizer, folder)
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    trainer.train()
    attached.finish(trainer)
    wall_s = time.perf_counter() - started
    load_end = os.getloadavg()[0]
    rounds, tokens = attached.rounds_and_tokens()
    hooks = attached.timer.step_end_s if attached.timer else {}
    round_hooks = [hooks[step] for step in hooks if step % size.interval == 0]
    return TrainingRun(
        variant,
        repeat,
        wall_s,
        rounds,
        tokens,
        sum(round_hooks) / len(round_hooks) if round_hooks else 0.0,
        round(load_start, 2),
        round(load_end, 2),
    )


class _Attached:
    """The variant's callbacks on one trainer, and what they generated."""

    def __init__(self, setup: RunSetup, variant: str, trainer: SFTTrainer, tokenizer: Any, folder: Path) -> None:
        size = setup.size
        self.tokenizer = tokenizer
        self.summaries: list[RoundSummaryEvent] = []
        self.checkpointer: Checkpointer | None = None
        self.callback: TrainerCallback | None = None
        self.timer: TimedHooks | None = None
        kind = variant.removesuffix("_ckpt")
        checkpoints = variant.endswith("_ckpt")
        if kind.startswith("ours"):
            job = JobIdentity(uuid.uuid4(), "bench")
            after_round = None
            if checkpoints:
                store = LocalStore(str(folder / "store"), mkdir=True)
                config = CheckpointsConfig(mode=CheckpointMode.EVERY_ROUND)
                self.checkpointer = Checkpointer(config, store, job, self._publish, folder / "checkpoints")
                after_round = self.checkpointer.on_round
            predictions = PredictionsConfig(
                enabled=True,
                sample_count=len(setup.samples),
                sample_frequency=SampleFrequency.STEPS,
                step_interval=size.interval,
                max_new_tokens=size.max_new_tokens,
                temperature=0.0,
                seed=setup.seed,
                background=kind == "ours_background",
                baseline_round=False,  # the peers have none
            )
            self.callback = prediction_rounds(
                predictions, setup.samples, tokenizer, self._publish, job, after_round=after_round
            )
        elif kind == "trl":
            trainer.eval_dataset = HFDataset.from_dict({"prompt": [sample.messages for sample in setup.samples]})
            generation = GenerationConfig(
                max_new_tokens=size.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            self.callback = LogCompletionsCallback(trainer, generation_config=generation, freq=size.interval)
        elif kind == "naive":
            prompts = [render_prompt(sample, tokenizer) for sample in setup.samples]
            self.callback = NaiveLoopCallback(prompts, size.interval, size.max_new_tokens)
        if self.callback is not None:
            self.timer = TimedHooks(self.callback)
            trainer.add_callback(self.timer)
        if checkpoints and kind == "trl":
            trainer.add_callback(SaveEveryRound(folder / "saves", size.interval))

    def _publish(self, _topic: str, event: Envelope) -> None:
        if isinstance(event, RoundSummaryEvent):
            self.summaries.append(event)

    def finish(self, trainer: SFTTrainer) -> None:
        """What the trainer's job does after training: the final checkpoint, then the uploads' end."""
        if self.checkpointer is not None:
            self.checkpointer.save_final(trainer.model, self.tokenizer, trainer.state.global_step, trainer.state.epoch)
            self.checkpointer.close()

    def rounds_and_tokens(self) -> tuple[int, int]:
        if isinstance(self.callback, RoundTriggers):
            return len(self.summaries), sum(s.tokens_generated for s in self.summaries)
        if isinstance(self.callback, LogCompletionsCallback):
            table = self.callback.table
            encoded = [len(self.tokenizer(row[2], add_special_tokens=False)["input_ids"]) for row in table]
            return len({int(row[0]) for row in table}), sum(encoded)
        if isinstance(self.callback, NaiveLoopCallback):
            return len(self.callback.tokens), sum(self.callback.tokens.values())
        return 0, 0
