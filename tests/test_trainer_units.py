"""The trainer's pure parts and its generator on a tiny model: no broker, no database."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState, TrainingArguments

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import Example, FileType
from epochscope_runtime.grading import Judge
from epochscope_runtime.grading.answers import unfence
from epochscope_runtime.grading.judge import builtin_scores as score
from epochscope_runtime.sampler import select_samples
from epochscope_schemas.config import PredictionsConfig, ValidatorConfig
from epochscope_schemas.events import Envelope, PredictionEvent, RoundSummaryEvent
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.generation import GenerationSettings, generate
from epochscope_trainer.job.inputs import InputFile, read_dataset
from epochscope_trainer.job.predictions import prediction_rounds
from epochscope_trainer.job.prompts import render_prompt


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def chat(question: str, answer: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def load_jsonl(path: Path) -> InputFile:
    return read_dataset(path, FileType.JSONL, DatasetLimits())


def examples(path: Path) -> list[Example]:
    return list(load_jsonl(path).examples())


def test_malformed_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write_rows(
        tmp_path / "d.jsonl",
        [chat("q0", "a0"), "{not json", {"messages": []}, {"prompt": "p", "completion": "c"}, chat("q1", "a1"), ""],
    )
    dataset = load_jsonl(path)
    assert [e.row for e in dataset.examples()] == [0, 4]
    assert {e.format for e in dataset.examples()} == {"chat"}
    assert dataset.usable == 2
    assert dataset.skipped == 3
    assert dataset.skip_reasons == {
        "not JSON": 1,
        "messages is not a non-empty list of messages": 1,
        "a prompt_completion row in a chat dataset": 1,
    }


def test_samples_are_seeded_stable_and_split_at_the_last_assistant_turn(tmp_path: Path) -> None:
    rows = [chat(f"q{i}", f"a{i}") for i in range(20)]
    rows[3]["messages"] += [{"role": "user", "content": "again?"}, {"role": "assistant", "content": "final"}]
    path = write_rows(tmp_path / "d.jsonl", rows)
    dataset = examples(path)
    first, again = select_samples(dataset, 5, seed=3), select_samples(dataset, 5, seed=3)
    assert first == again
    assert load_jsonl(path).samples(5, seed=3) == first  # the trainer's streamed pick: the same set
    assert [s.sample_id for s in select_samples(dataset, 5, seed=4)] != [s.sample_id for s in first]
    assert all(s.sample_id.startswith("row-") for s in first)
    everything = {s.sample_id: s for s in select_samples(dataset, 20, seed=0)}
    assert everything["row-000003"].ground_truth == "final"
    assert [m["content"] for m in everything["row-000003"].messages] == ["q3", "a3", "again?"]
    assert len(select_samples(dataset, 50, seed=0)) == 20


def test_prompt_completion_and_text_rows(tmp_path: Path) -> None:
    pc = examples(write_rows(tmp_path / "pc.jsonl", [{"prompt": "2+2=", "completion": "4"}]))
    text = examples(write_rows(tmp_path / "t.jsonl", [{"text": "once upon a time"}]))
    (pc_sample,), (text_sample,) = select_samples(pc, 1, 0), select_samples(text, 1, 0)
    assert (render_prompt(pc_sample, None), pc_sample.ground_truth) == ("2+2=", "4")
    assert (render_prompt(text_sample, None), text_sample.ground_truth) == ("once upon a time", None)


def test_validators_read_fenced_json_and_name_the_schema_error() -> None:
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    judge = Judge(PredictionsConfig(validators=[ValidatorConfig(kind="json_schema", json_schema=schema)]).graders)
    assert unfence('Sure!\n```json\n{"city": "Oslo"}\n```') == '{"city": "Oslo"}'
    assert judge("", '```json\n{"city": "Oslo"}\n```', {}).valid is True
    bad = judge("", '{"city": 7}', {})
    assert bad.valid is False and "at city" in bad.validation_error
    assert judge("", "Oslo", {}).validation_error.startswith("not valid JSON")
    assert Judge([])("", "anything", {}).valid is None


def test_scores() -> None:
    assert score("The Paris.", "paris").exact_match == 1.0
    partial = score("hotel in Paris for two nights", "Paris two nights")
    assert partial.exact_match == 0.0 and 0.5 < partial.f1 < 1.0 and 0.5 < partial.rouge_l < 1.0
    assert score("", "x").f1 == 0.0


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_batched_generation_matches_one_at_a_time_and_restores_the_model(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    model.train()
    model.config.use_cache = False
    prompts = ["What is 1 plus 1?", "Hi", "What is the capital of France? Tell me please, in detail.", "2"]
    settings = GenerationSettings(max_new_tokens=6, temperature=0.0, top_p=1.0, seed=0, batch_size=3)
    batched = generate(model, tokenizer, prompts, settings)
    single = [generate(model, tokenizer, [p], settings)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(0 <= g.tokens <= 6 and g.latency_ms > 0 for g in batched)
    assert model.training and model.config.use_cache is False and tokenizer.padding_side == "right"


def test_sampling_is_seeded(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    settings = GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=0.9, seed=11)
    first = generate(model, tokenizer, ["Hello", "World"], settings)
    assert first == [
        g.__class__(g.text, g.tokens, first[i].latency_ms)
        for i, g in enumerate(generate(model, tokenizer, ["Hello", "World"], settings))
    ]


def test_one_round_per_global_step_whatever_triggers_land_on_it(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = tiny
    dataset = examples(write_rows(tmp_path / "d.jsonl", [chat(f"q{i}", f"a{i}") for i in range(6)]))
    published: list[tuple[str, Envelope]] = []
    config = PredictionsConfig(
        enabled=True,
        sample_count=3,
        sample_frequency="steps",
        step_interval=2,
        max_new_tokens=3,
        validators=[ValidatorConfig(kind="json_parse")],
    )
    job = JobIdentity("0b7c1f7e-5d4c-4a7e-9a51-2f1f1d1f0c11", "token")
    callback = prediction_rounds(
        config, select_samples(dataset, 3, 0), tokenizer, lambda t, e: published.append((t, e)), job
    )
    args, control = TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[]), TrainerControl()
    state = TrainerState()
    for step in (1, 2):
        state.global_step, state.epoch = step, step / 2
        callback.on_step_end(args, state, control, model=model)
    callback.on_epoch_end(args, state, control, model=model)  # same global step 2: no second round
    config.sample_frequency = "epoch"
    callback.on_epoch_end(args, state, control, model=model)
    predictions = [e for _, e in published if isinstance(e, PredictionEvent)]
    summaries = [e for _, e in published if isinstance(e, RoundSummaryEvent)]
    assert len(predictions) == 3 and len(summaries) == 1
    assert {(p.round_index, p.step, p.epoch) for p in predictions} == {(0, 2, 1.0)}
    summary = summaries[0]
    assert (summary.predictions, summary.validated, summary.scored, summary.trigger) == (3, 3, 3, "steps")
    assert summary.stall_ms == summary.wall_ms > 0
    assert all(p.valid is not None and p.scores is not None for p in predictions)


def test_background_rounds_match_inline_rounds_and_stall_only_for_the_snapshot(
    tiny: tuple[Any, Any], tmp_path: Path
) -> None:
    model, tokenizer = tiny
    dataset = examples(write_rows(tmp_path / "d.jsonl", [chat(f"q{i}", f"a{i}") for i in range(6)]))
    samples = select_samples(dataset, 4, 0)
    job = JobIdentity("0b7c1f7e-5d4c-4a7e-9a51-2f1f1d1f0c11", "token")
    args, control, state = (
        TrainingArguments(output_dir=str(tmp_path / "o"), report_to=[]),
        TrainerControl(),
        TrainerState(),
    )
    outputs: dict[bool, list[Envelope]] = {}
    for background in (False, True):
        published: list[Envelope] = []
        config = PredictionsConfig(enabled=True, sample_count=4, max_new_tokens=48, background=background)
        callback = prediction_rounds(config, samples, tokenizer, lambda _t, e, out=published: out.append(e), job)
        for step in (1, 2):
            state.global_step, state.epoch = step, float(step)
            callback.on_epoch_end(args, state, control, model=model)
            with torch.no_grad():  # training moves the weights between rounds, and takes time
                model.lm_head.weight.add_(0.05)
            time.sleep(0.5)
        callback.on_train_end(args, state, control, model=model)
        outputs[background] = published
        with torch.no_grad():
            model.lm_head.weight.sub_(0.1)
    texts = {b: [e.prediction for e in out if isinstance(e, PredictionEvent)] for b, out in outputs.items()}
    assert texts[True] == texts[False] and len(texts[True]) == 8
    background_rounds = [e for e in outputs[True] if isinstance(e, RoundSummaryEvent)]
    assert all(r.stall_ms < r.wall_ms for r in background_rounds)
