"""The training callbacks the prediction_round benchmark runs: a timer around a round-making callback's hooks, the
naive one-prompt-at-a-time loop, and the local checkpoint save the TRL peer makes at each round."""

import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class TimedHooks(TrainerCallback):
    """Runs one callback's on_step_end and on_train_end (the only hooks the variants act on here) and records how
    long each took: the time the training loop waited inside them. Not the cost of a background round, which runs
    beside training: that is the whole run's wall time against the run without rounds."""

    def __init__(self, callback: TrainerCallback) -> None:
        self.callback = callback
        self.step_end_s: dict[int, float] = {}
        self.train_end_s = 0.0

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        started = time.perf_counter()
        self.callback.on_step_end(args, state, control, **kwargs)
        self.step_end_s[state.global_step] = time.perf_counter() - started

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        started = time.perf_counter()
        self.callback.on_train_end(args, state, control, **kwargs)
        self.train_end_s = time.perf_counter() - started


class NaiveLoopCallback(TrainerCallback):
    """The hand-written baseline: every `interval` steps, eval mode, then tokenize, generate and decode one
    prompt at a time."""

    def __init__(self, prompts: list[str], interval: int, max_new_tokens: int) -> None:
        self.prompts = prompts
        self.interval = interval
        self.max_new_tokens = max_new_tokens
        self.tokens: dict[int, int] = {}  # global step -> tokens generated

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step % self.interval:
            return
        model, tokenizer = kwargs["model"], kwargs["processing_class"]
        model.eval()
        generated = 0
        with torch.no_grad():
            for prompt in self.prompts:
                inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
                output = model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
                new_tokens = output[0, inputs["input_ids"].shape[1] :].tolist()
                tokenizer.decode(new_tokens, skip_special_tokens=True)
                generated += len(new_tokens) - (new_tokens[-1:] == [tokenizer.eos_token_id])
        model.train()
        self.tokens[state.global_step] = generated


class SaveEveryRound(TrainerCallback):
    """The peer's checkpoints: at each round's step (after the round's callback), the weights and tokenizer saved
    to a local folder as the trainer's inline save writes them (`save_pretrained`: a PeftModel writes its adapter).
    Trainer's own save_steps would also write optimizer and RNG state, more work than ours does."""

    def __init__(self, folder: Path, interval: int) -> None:
        self.folder = folder
        self.interval = interval

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step % self.interval == 0:
            target = self.folder / f"round-step-{state.global_step}"
            kwargs["model"].save_pretrained(target, safe_serialization=True)
            kwargs["processing_class"].save_pretrained(target)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        target = self.folder / "final"
        kwargs["model"].save_pretrained(target, safe_serialization=True)
        kwargs["processing_class"].save_pretrained(target)
