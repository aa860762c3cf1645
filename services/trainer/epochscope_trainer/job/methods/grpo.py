"""GRPO: TRL's GRPOTrainer on prompt rows, each reward component one of the job's graders, called through the same
`Grader` a prediction round runs, so a completion's reward and its grade in a round are the same number.

TRL adds the components' scores times their weights; the weights handed to TRL are the configured weights divided
by their sum, so a completion's total reward is the weighted mean of its components' scores (a component that did
not grade it, for want of its reference, adds nothing).
"""

import importlib.util
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from trl import GRPOConfig, GRPOTrainer

from epochscope_runtime.grading import Grader
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import GrpoMethod
from epochscope_trainer.job.methods.grpo_rows import prompt_record, references_of
from epochscope_trainer.job.methods.reward_divergence import DivergenceDetector
from epochscope_trainer.job.methods.reward_steps import RewardWatch
from epochscope_trainer.job.methods.rollouts import RolloutRecorder, StepCompletions, text_of
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


class RecordingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that hands each training generation batch, as TRL scored it, to the rollout recorder and the
    reward watch; each component's pass rate joins TRL's metrics (`rewards/<name>/pass_rate`, averaged per log).

    TRL keeps the last generation batch (gathered from every rank) in `_logs` for its own `log_completions`; it is
    read here right after TRL fills it, before the update, so nothing is generated or scored twice."""

    def __init__(self, *args: Any, rollouts: RolloutRecorder, reward_watch: RewardWatch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rollouts = rollouts
        self.reward_watch = reward_watch

    def _generate_and_score_completions(self, inputs: Any) -> Any:
        output = super()._generate_and_score_completions(inputs)
        if self.model.training and self.is_world_process_zero():
            logs = self._logs
            batch = StepCompletions(
                step=self.state.global_step + 1,
                prompts=list(logs["prompt"]),
                completions=list(logs["completion"]),
                scores={name: list(values) for name, values in logs["rewards"].items()},
                advantages=list(logs["advantages"]),
            )
            self.rollouts.record(batch)
            for name, rate in self.reward_watch.observe(batch).items():
                self._metrics["train"][f"rewards/{name}/pass_rate"].append(math.nan if rate is None else rate)
        return output


class GroupRelativePolicyOptimization:
    """GRPOTrainer with the job's hyperparameters, rewarded by its graders; LoRA through PEFT when asked."""

    training_record = staticmethod(prompt_record)

    def build_trainer(self, parts: "TrainingParts") -> GRPOTrainer:
        config = parts.config
        assert isinstance(config.method, GrpoMethod)
        components = reward_components(config)
        arguments = grpo_arguments(
            config, parts.precision, parts.output_dir, parts.logging_steps, has_eval=bool(parts.eval_rows)
        )
        weights = {reward.__name__: weight for reward, weight in components}
        recorder = RolloutRecorder(config.method.rollouts, weights, parts.publish, parts.job, parts.text_max_bytes)
        thresholds = {reward.__name__: reward.grader.config.threshold for reward, _ in components}
        detector = DivergenceDetector(config.method.reward_divergence)
        watch = RewardWatch(thresholds, detector, parts.publish, parts.job)
        return RecordingGRPOTrainer(
            model=parts.model,
            reward_funcs=[reward for reward, _ in components],
            args=GRPOConfig(**arguments, reward_weights=[weight for _, weight in components]),
            train_dataset=parts.train_rows,
            eval_dataset=parts.eval_rows,
            processing_class=parts.tokenizer,
            peft_config=lora_config(config.lora),
            callbacks=parts.callbacks,
            rollouts=recorder,
            reward_watch=watch,
        )
