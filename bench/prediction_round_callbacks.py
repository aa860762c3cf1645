"""The training callbacks the prediction_round benchmark runs beside ours: a timer around every variant's
hooks (the training stall each causes) and the naive one-prompt-at-a-time loop."""

import time
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class TimedHooks(TrainerCallback):
    """Runs the variants' on_step_end and on_train_end (the only hooks they act on here) one after another, in
    an order rotated every step, and records how long each took: the time the training loop waited for it."""

    def __init__(self, variants: dict[str, TrainerCallback]) -> None:
        self.variants = variants
        self.step_end_s: dict[str, dict[int, float]] = {name: {} for name in variants}
        self.train_end_s: dict[str, float] = {}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        names = list(self.variants)
        shift = state.global_step % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            self.variants[name].on_step_end(args, state, control, **kwargs)
            self.step_end_s[name][state.global_step] = time.perf_counter() - started

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        for name, callback in self.variants.items():
            started = time.perf_counter()
            callback.on_train_end(args, state, control, **kwargs)
            self.train_end_s[name] = time.perf_counter() - started


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
