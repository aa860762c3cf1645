"""GRPO: TRL's GRPOTrainer on prompt rows, each reward component one of the job's graders, called through the same
`Grader` a prediction round runs, so a completion's reward and its grade in a round are the same number.

TRL adds the components' scores times their weights; the weights handed to TRL are the configured weights divided
by their sum, so a completion's total reward is the weighted mean of its components' scores (a component that did
not grade it, for want of its reference, adds nothing).
"""

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trl import GRPOConfig, GRPOTrainer

from epochscope_runtime.grading import Grader
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import GrpoMethod
from epochscope_trainer.job.methods.grpo_rows import prompt_record, references_of
from epochscope_trainer.job.precision import Precision
from epochscope_trainer.job.training_args import lora_config, sft_arguments

if TYPE_CHECKING:
    from epochscope_trainer.job.methods import TrainingParts


class GraderReward:
    """One reward component for TRL: the grader's score of each completion against its row's references; None
    (not graded) where the row lacks the reference."""

    def __init__(self, grader: Grader) -> None:
        self.grader = grader
        self.__name__ = grader.name  # TRL names the component's metrics (rewards/<name>/mean) after it

    def __call__(
        self, prompts: list[Any], completions: list[Any], references: list[str], **_: Any
    ) -> list[float | None]:
        return [
            self.score(text_of(prompt), text_of(completion), references_of(refs))
            for prompt, completion, refs in zip(prompts, completions, references, strict=True)
        ]

    def score(self, prompt: str, completion: str, references: Mapping[str, str]) -> float | None:
        verdict = self.grader(prompt, completion, references)
        return None if verdict is None else verdict.score


def text_of(turns: Any) -> str:
    """A prompt or completion as text: itself, or its last message's content (conversational rows)."""
    return turns if isinstance(turns, str) else turns[-1]["content"]


def reward_components(config: JobConfig) -> list[tuple[GraderReward, float]]:
    """The job's reward components with their weights summing to 1; a named grader is the job's grader of that
    name."""
    assert isinstance(config.method, GrpoMethod)
    named = {grader.name: grader for grader in config.predictions.graders}
    total = sum(component.weight for component in config.method.rewards)
    return [
        (GraderReward(Grader(named[c.grader] if isinstance(c.grader, str) else c.grader)), c.weight / total)
        for c in config.method.rewards
    ]


def uses_vllm(precision: Precision) -> bool:
    """Generation by TRL's colocated vLLM where a CUDA device and vLLM are present; batched `generate` otherwise."""
    return precision.use_cuda and importlib.util.find_spec("vllm") is not None


def grpo_arguments(
    config: JobConfig, precision: Precision, output_dir: Any, logging_steps: int, has_eval: bool
) -> dict[str, Any]:
    """GRPOConfig's arguments: the trainer arguments every method shares, and the method's own."""
    method = config.method
    assert isinstance(method, GrpoMethod)
    shared = sft_arguments(config, precision, output_dir, logging_steps, has_eval)
    del shared["max_length"]  # SFT's sequence length; a GRPO sequence is the prompt and max_completion_length
    vllm = uses_vllm(precision)
    return {
        **shared,
        "num_generations": method.num_generations,
        "max_completion_length": method.max_completion_length,
        "temperature": method.temperature,
        "beta": method.beta,
        "max_steps": method.max_steps or -1,
        "use_vllm": vllm,
        **({"vllm_mode": "colocate"} if vllm else {}),
    }


class GroupRelativePolicyOptimization:
    """GRPOTrainer with the job's hyperparameters, rewarded by its graders; LoRA through PEFT when asked."""

    training_record = staticmethod(prompt_record)

    def build_trainer(self, parts: "TrainingParts") -> GRPOTrainer:
        components = reward_components(parts.config)
        arguments = grpo_arguments(
            parts.config, parts.precision, parts.output_dir, parts.logging_steps, has_eval=bool(parts.eval_rows)
        )
        return GRPOTrainer(
            model=parts.model,
            reward_funcs=[reward for reward, _ in components],
            args=GRPOConfig(**arguments, reward_weights=[weight for _, weight in components]),
            train_dataset=parts.train_rows,
            eval_dataset=parts.eval_rows,
            processing_class=parts.tokenizer,
            peft_config=lora_config(parts.config.lora),
            callbacks=parts.callbacks,
        )
