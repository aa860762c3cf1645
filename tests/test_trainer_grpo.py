"""GRPO jobs in the trainer: prompt rows with their references, rewards that are the job's graders (the same
`Grader` a prediction round runs), the generation backend's policy, and a real job on the tiny model (in-process,
local object store, no broker)."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from test_trainer_job_inputs import final_message, run_job, store  # noqa: F401  (store is a fixture)
from trainer_fakes import dir_model, jsonl_bytes, put_dataset, start_event

from epochscope_runtime.dataset_rows import Example, row_problem
from epochscope_runtime.grading import Grader
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus, JobStatusEvent, PredictionEvent, ProgressEvent, RolloutEvent
from epochscope_schemas.graders import GraderConfig
from epochscope_schemas.methods import RolloutLogging
from epochscope_trainer.job.methods import grpo
from epochscope_trainer.job.methods.grpo import GraderReward, grpo_arguments, reward_components, uses_vllm
from epochscope_trainer.job.methods.grpo_rows import prompt_record
from epochscope_trainer.job.methods.rollouts import RolloutRecorder
from epochscope_trainer.job.precision import Precision, precision_for
from epochscope_trainer.settings import TrainerSettings

LABEL = {"type": "string_check", "name": "label", "operation": "equals", "reference_field": "label"}
IS_JSON = {"type": "json_parse", "name": "is_json"}
SOME_TEXT = {"type": "regex", "name": "some_text", "pattern": r"\S"}  # a random model earns it: totals above 0
LIKE_LABEL = {"type": "text_similarity", "name": "like_label", "metric": "chrf", "reference_field": "label"}


def grpo_job(rewards: list[dict[str, Any]], **method: Any) -> JobConfig:
    return JobConfig(
        model="tiny",
        dataset_id=uuid.uuid4(),
        batch_size=4,
        method={"type": "grpo", "rewards": rewards, "num_generations": 2, **method},
        predictions={"graders": [IS_JSON]},
    )


def test_a_row_becomes_its_prompt_and_its_references() -> None:
    user = {"role": "user", "content": "Sentiment of 'great'?"}
    chat = prompt_record(Example(0, {"messages": [user], "label": "positive", "score": 3}))
    assert chat["prompt"] == [user]  # ends in a user turn: the whole conversation, no ground truth
    assert json.loads(chat["references"]) == {"label": "positive", "score": "3"}
    answered = prompt_record(Example(1, {"messages": [user, {"role": "assistant", "content": "positive"}]}))
    assert answered["prompt"] == [user] and json.loads(answered["references"]) == {"ground_truth": "positive"}
    plain = prompt_record(Example(2, {"prompt": "2+2=", "completion": "4", "label": "four"}))
    assert plain["prompt"] == "2+2=" and json.loads(plain["references"]) == {"label": "four", "ground_truth": "4"}
    prompt_only = prompt_record(Example(3, {"prompt": "2+2=", "label": "four"}))
    assert prompt_only["prompt"] == "2+2=" and json.loads(prompt_only["references"]) == {"label": "four"}


def test_a_prompt_only_row_is_usable_and_a_prompt_with_a_bad_completion_is_not() -> None:
    assert row_problem({"prompt": "2+2=", "label": "four"}) is None
    assert row_problem({"prompt": "2+2=", "completion": None}) is not None
    assert row_problem({"prompt": "", "label": "four"}) is not None


def test_each_reward_component_is_its_grader_and_the_weights_make_a_weighted_mean() -> None:
    config = grpo_job([{"grader": "is_json", "weight": 1}, {"grader": LABEL, "weight": 3}])
    components = reward_components(config)
    assert [(reward.__name__, weight) for reward, weight in components] == [("is_json", 0.25), ("label", 0.75)]
    (is_json, _), (label, _) = components
    completions = ['{"a": 1}', "positive", [{"role": "assistant", "content": "positive"}]]
    references = [json.dumps({"label": "positive"}), json.dumps({"label": "positive"}), json.dumps({})]
    prompts = ["p", "p", [{"role": "user", "content": "p"}]]
    assert label(prompts, completions, references, trainer_state=None) == [0.0, 1.0, None]  # no label: not graded
    assert is_json(prompts, completions, references) == [1.0, 0.0, 0.0]
    same = Grader(TypeAdapter(GraderConfig).validate_python(LABEL))  # what a prediction round runs
    assert label.score("p", "positive", {"label": "positive"}) == same("p", "positive", {"label": "positive"}).score


def test_rollouts_are_all_completions_or_a_sample_seeded_by_step() -> None:
    def chosen(step: int, count: int, **logging: Any) -> list[int]:
        return RolloutRecorder(RolloutLogging(**logging), {}, print, None, 100).chosen(step, count)  # type: ignore[arg-type]

    assert chosen(1, 5, log="all", per_step=2) == [0, 1, 2, 3, 4]
    assert chosen(1, 3, log="sample", per_step=8) == [0, 1, 2]
    sample = chosen(7, 100, log="sample", per_step=10, seed=3)
    assert len(set(sample)) == 10 and sample == sorted(sample) == chosen(7, 100, log="sample", per_step=10, seed=3)
    assert sample != chosen(8, 100, log="sample", per_step=10, seed=3)
    assert sample != chosen(7, 100, log="sample", per_step=10, seed=4)


def test_generation_uses_vllm_only_with_cuda_and_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpo.importlib.util, "find_spec", lambda name: object() if name == "vllm" else None)
    assert uses_vllm(Precision(use_cuda=True, bf16=True)) and not uses_vllm(Precision(use_cuda=False, bf16=False))
    monkeypatch.setattr(grpo.importlib.util, "find_spec", lambda name: None)
    assert not uses_vllm(Precision(use_cuda=True, bf16=True))


def test_a_cuda_machine_with_vllm_generates_by_colocated_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = grpo_job([{"grader": "is_json"}])
    monkeypatch.setattr(grpo.importlib.util, "find_spec", lambda name: object() if name == "vllm" else None)
    on_gpu = grpo_arguments(config, precision_for(cuda_available=True, cuda_bf16_supported=True), tmp_path, 1, False)
    assert on_gpu["use_vllm"] is True and on_gpu["vllm_mode"] == "colocate" and on_gpu["bf16"] is True
    on_cpu = grpo_arguments(config, precision_for(cuda_available=False, cuda_bf16_supported=False), tmp_path, 1, False)
    assert on_cpu["use_vllm"] is False and "vllm_mode" not in on_cpu


def test_the_method_s_settings_reach_grpo_config(tmp_path: Path) -> None:
    config = grpo_job([{"grader": "is_json"}], max_completion_length=7, temperature=0.7, beta=0.04, max_steps=3)
    arguments = grpo_arguments(config, Precision(use_cuda=False, bf16=False), tmp_path, 1, has_eval=False)
    wanted = {"num_generations": 2, "max_completion_length": 7, "temperature": 0.7, "beta": 0.04, "max_steps": 3}
    assert {key: arguments[key] for key in wanted} == wanted
    assert arguments["use_vllm"] is False and "max_length" not in arguments


def test_a_grpo_job_trains_on_prompt_rows_rewarded_by_its_graders(
    store: tuple[TrainerSettings, ObjectStore],  # noqa: F811
    tiny_model_dir: Path,
) -> None:
    settings, objects = store
    rows = [
        {"messages": [{"role": "user", "content": f"Is {i} even?"}], "label": "yes" if i % 2 == 0 else "no"}
        for i in range(8)
    ]
    train = put_dataset(objects, jsonl_bytes(rows))
    method = {
        "type": "grpo",
        "rewards": [{"grader": LABEL, "weight": 2}, {"grader": "is_json"}, {"grader": SOME_TEXT, "weight": 3}],
        "num_generations": 2,
        "max_completion_length": 4,
        "max_steps": 2,
        "rollouts": {"log": "sample", "per_step": 3, "seed": 5},
    }
    config = {"batch_size": 4, "learning_rate": 1e-3, "method": method, "predictions": {"graders": [IS_JSON]}}
    status, published = run_job(settings, objects, start_event(config, train, dir_model(tiny_model_dir)))
    assert status == JobStatus.COMPLETED, final_message(published)
    resolved = [json.loads(e.message) for e in published if isinstance(e, JobStatusEvent) and "{" in (e.message or "")]
    assert [(r["method"], r["train_rows"]) for r in resolved] == [("grpo", 8)]
    progress = [e for e in published if isinstance(e, ProgressEvent)]
    assert max(e.step for e in progress) == 2
    for point in progress:  # each component's mean and pass rate at every logged step, and the total's mean
        assert point.rewards is not None and set(point.rewards) == {"label", "is_json", "some_text"}
        assert all(c.mean is not None and c.pass_rate is not None for c in point.rewards.values())
        assert point.reward is not None
    rollouts = [e for e in published if isinstance(e, RolloutEvent)]
    for step in (1, 2):  # 3 of each step's 4 completions (2 prompts x 2 generations)
        indices = [r.completion_index for r in rollouts if r.step == step]
        assert len(set(indices)) == 3 and set(indices) <= set(range(4))
    labels = {row["messages"][0]["content"]: row["label"] for row in rows}
    graders = {g["name"]: Grader(TypeAdapter(GraderConfig).validate_python(g)) for g in (LABEL, IS_JSON, SOME_TEXT)}
    weights = {"label": 2, "is_json": 1, "some_text": 3}
    for rollout in rollouts:  # the rewards TRL trained on are an independent grading of the stored texts
        references = {"label": labels[rollout.prompt]}
        expected = {name: g(rollout.prompt, rollout.completion, references).score for name, g in graders.items()}
        assert rollout.rewards == expected
        assert rollout.reward == pytest.approx(sum(weights[n] * expected[n] for n in weights) / 6)
    assert any(rollout.reward for rollout in rollouts)
    assert len(rollouts) == 6


def test_prompt_only_rows_train_and_a_round_grades_with_the_reference_field_as_the_reward_does(
    store: tuple[TrainerSettings, ObjectStore],  # noqa: F811
    tiny_model_dir: Path,
) -> None:
    """A round's grade of an answer and a rollout's reward for the same text are the same number: the round passes
    the sample row's reference fields (`label`) to its graders, as the reward does."""
    settings, objects = store
    rows = [{"prompt": f"Is {i} even?", "label": f"{i} is {'even' if i % 2 == 0 else 'odd'}"} for i in range(8)]
    train = put_dataset(objects, jsonl_bytes(rows))
    method = {"type": "grpo", "rewards": [{"grader": "like_label"}], "num_generations": 2, "max_completion_length": 6}
    config = {
        "batch_size": 4,
        "learning_rate": 1e-3,
        "method": method | {"max_steps": 1},
        "predictions": {"enabled": True, "sample_count": 4, "max_new_tokens": 6, "graders": [LIKE_LABEL]},
    }
    status, published = run_job(settings, objects, start_event(config, train, dir_model(tiny_model_dir)))
    assert status == JobStatus.COMPLETED, final_message(published)
    rollouts = [e for e in published if isinstance(e, RolloutEvent)]
    assert rollouts and {r.prompt for r in rollouts} <= {row["prompt"] for row in rows}
    reward = GraderReward(Grader(TypeAdapter(GraderConfig).validate_python(LIKE_LABEL)))  # the job's reward component
    for rollout in rollouts:
        references = _label_of(rows, rollout.prompt)
        rewarded = reward.score(rollout.prompt, rollout.completion, references)
        assert rollout.rewards["like_label"] == pytest.approx(rewarded, rel=1e-6)  # TRL holds rewards in float32
    predictions = [e for e in published if isinstance(e, PredictionEvent)]
    assert len(predictions) >= 4
    for prediction in predictions:
        row = rows[int(prediction.sample_id.removeprefix("row-"))]
        rewarded = reward.score(row["prompt"], prediction.prediction, {"label": row["label"]})
        assert rewarded is not None and prediction.grades["like_label"].score == rewarded, prediction


def _label_of(rows: list[dict[str, str]], prompt: str) -> dict[str, str]:
    (label,) = [row["label"] for row in rows if row["prompt"] == prompt]
    return {"label": label}
