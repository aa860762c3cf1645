"""Preference pairs from a job's rounds (POST /v1/jobs/{id}/preference-pairs): the answers of the chosen rounds,
judged by one grader (or the user's verdicts), paired by pair_selection.py, written as a JSONL file in TRL's
preference format with the prompts read from the job's samples dataset, and stored through the upload's own path
(the same scan, report and quotas), with the job, rounds and rule recorded as the dataset's provenance."""

import uuid

import asyncpg
import orjson

from epochscope_api.data.datasets import StoredDataset, fetch_dataset
from epochscope_api.data.db import user_transaction
from epochscope_api.data.preference_pairs import answers_by_sample, fetch_rounds_with_answers, fetch_samples_dataset_id
from epochscope_api.datasets.row_index import positions_of_rows, read_examples
from epochscope_api.datasets.uploads import BuiltUpload
from epochscope_api.errors import BadParameter, DatasetNotFound
from epochscope_api.jobs.validation import field_errors
from epochscope_api.preference_models import PairRule
from epochscope_api.response_models import Dataset
from epochscope_api.service_layer.datasets import Scanner, upload_dataset
from epochscope_api.service_layer.pair_selection import Pair, answer_of, pair_row, sample_pairs
from epochscope_api.settings import ApiSettings
from epochscope_runtime.object_store import ObjectStore
from epochscope_runtime.sampler import to_sample

SAMPLE_ID_PREFIX = "row-"


async def build_preference_pairs(
    pool: asyncpg.Pool,
    store: ObjectStore,
    user_id: str,
    job_id: uuid.UUID,
    rule: PairRule,
    scan: Scanner,
    settings: ApiSettings,
) -> Dataset:
    """The new dataset of the job's pairs, regressions first, at most the rule's (and the server's) pair count;
    a 422 naming the field when the rule asks past the limit or finds no pair."""
    maximum = settings.preference_pairs_max
    if rule.max_pairs is not None and rule.max_pairs > maximum:
        raise field_errors([(("max_pairs",), f"must be at most {maximum} (EPOCHSCOPE_PREFERENCE_PAIRS_MAX)")])
    maximum = rule.max_pairs or maximum
    async with user_transaction(pool, user_id) as conn:
        samples_dataset_id = await fetch_samples_dataset_id(conn, job_id)
        rounds = await fetch_rounds_with_answers(conn, job_id, rule.rounds)
        if not rounds:
            raise BadParameter("rounds", "no answers in these rounds")
        regressions: list[Pair] = []
        others: list[Pair] = []
        async for rows in answers_by_sample(conn, job_id, rule.rounds, rule.grader):
            found_regressions, found_others = sample_pairs([answer_of(row) for row in rows], rule.chosen)
            regressions += found_regressions[: maximum - len(regressions)]
            others += found_others[: maximum - len(others)]
        try:
            samples_dataset = await fetch_dataset(conn, samples_dataset_id)
        except DatasetNotFound:
            raise BadParameter("job_id", "the job's samples dataset was deleted: the prompts are gone") from None
    pairs = _distinct(regressions + others)[:maximum]
    prompts = await _prompts(store, samples_dataset, {pair.sample_id for pair in pairs})
    pairs = [pair for pair in pairs if pair.sample_id in prompts]
    if not pairs:
        raise BadParameter(
            "grader", f"no pairs: no answer failed {rule.grader!r} with a better answer to set against it"
        )
    content = b"".join(orjson.dumps(pair_row(prompts[pair.sample_id], pair)) + b"\n" for pair in pairs)
    body = BuiltUpload(store, user_id, f"preference-pairs-{job_id}.jsonl", content)
    provenance = {
        "job_id": job_id,
        "rounds": rounds,
        "rule": rule.model_dump(mode="json"),
        "pairs": len(pairs),
        "regressions": sum(pair.regression for pair in pairs),
    }
    return await upload_dataset(pool, store, user_id, body, scan, settings, provenance)


def _distinct(pairs: list[Pair]) -> list[Pair]:
    """The first of each (sample, chosen, rejected): a regression repeated across rounds is one pair."""
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for pair in pairs:
        key = (pair.sample_id, pair.chosen, pair.rejected)
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept


async def _prompts(store: ObjectStore, dataset: StoredDataset, sample_ids: set[str]) -> dict[str, list | str]:
    """Each sample's prompt as the dataset holds it (chat messages before the answer, or the prompt text), read
    from the file by its row: never the stored prediction's copy, which the trainer may have cut."""
    rows = {int(s.removeprefix(SAMPLE_ID_PREFIX)): s for s in sample_ids if s.removeprefix(SAMPLE_ID_PREFIX).isdigit()}
    positions = await positions_of_rows(store, dataset, sorted(rows))
    examples = await read_examples(store, dataset, [positions[row] for row in sorted(positions)])
    prompts: dict[str, list | str] = {}
    for example in examples:
        sample = to_sample(example, 0)
        prompt = sample.messages if sample.messages is not None else sample.text
        if prompt:
            prompts[rows[example.row]] = prompt
    return prompts
