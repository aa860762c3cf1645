"""Answer timeline use cases: each sample's verdicts across a job's rounds (first pass, flips), and the changes
between two rounds of a job or two jobs on the same samples, with their significance."""

import asyncio
import uuid
from itertools import groupby

import asyncpg

from epochscope_api.data.comparisons import fetch_compared_jobs, shared_sample_ids
from epochscope_api.data.cursor import decode_cursor, encode_cursor, text
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.timeline import Verdicts, fetch_latest_verdicts, fetch_round_verdicts, fetch_timeline_rows
from epochscope_api.errors import BadParameter
from epochscope_api.service_layer.answer_flips import grader_history
from epochscope_api.service_layer.paired_changes import paired_comparison
from epochscope_api.settings import ApiSettings
from epochscope_api.timeline_models import (
    AnswerFlip,
    GraderTimeline,
    PairedComparison,
    RoundVerdict,
    SampleTimeline,
    TimelinePage,
)


async def job_timeline(
    conn: asyncpg.Connection, job_id: uuid.UUID, cursor: str | None, limit: int, grader: str | None
) -> TimelinePage:
    """Up to `limit` samples after `cursor`, each with every grader's (or `grader`'s) verdicts across the rounds."""
    await ensure_job(conn, job_id)
    (after_sample,) = decode_cursor(cursor, text) if cursor else ("",)
    rows = await fetch_timeline_rows(conn, job_id, after_sample, limit + 1, grader)
    samples = [list(group) for _, group in groupby(rows, key=lambda row: row["sample_id"])]
    items = [_sample_timeline(sample_rows) for sample_rows in samples[:limit]]
    return TimelinePage(
        items=items,
        next_cursor=encode_cursor([items[-1].sample_id]) if items else cursor,
        has_more=len(samples) > limit,
    )


def _sample_timeline(rows: list[asyncpg.Record]) -> SampleTimeline:
    names = sorted({name for row in rows for name in row["verdicts"]})
    graders = []
    for name in names:
        verdicts = [
            (row["round_index"], bool(row["verdicts"][name]["passed"])) for row in rows if name in row["verdicts"]
        ]
        history = grader_history(verdicts)
        graders.append(
            GraderTimeline(
                grader=name,
                first_passed_round=history.first_passed_round,
                verdicts=[RoundVerdict(round_index=r, passed=passed) for r, passed in verdicts],
                flips=[AnswerFlip(kind=f.kind, from_round=f.from_round, to_round=f.to_round) for f in history.flips],
            )
        )
    return SampleTimeline(sample_id=rows[0]["sample_id"], sample_index=rows[0]["sample_index"], graders=graders)


async def compare_rounds(
    conn: asyncpg.Connection, job_id: uuid.UUID, before: int, after: int, settings: ApiSettings
) -> PairedComparison:
    """Round `after` against round `before` of one job; BadParameter naming a round without predictions."""
    await ensure_job(conn, job_id)
    by_round = await fetch_round_verdicts(conn, job_id, [before, after])
    for name, round_index in (("a", before), ("b", after)):
        if round_index not in by_round:
            raise BadParameter(name, f"round {round_index} has no predictions")
    return await _in_thread(f"round {before}", f"round {after}", by_round[before], by_round[after], settings)


async def compare_two_jobs(
    conn: asyncpg.Connection, job_ids: list[uuid.UUID], settings: ApiSettings
) -> PairedComparison:
    """The second job's latest answers against the first's, on the samples they share (none across datasets)."""
    if len(job_ids) != 2:
        raise BadParameter("job_ids", f"give 2 distinct job ids, not {len(job_ids)}")
    jobs = await fetch_compared_jobs(conn, job_ids)
    shared, _ = await shared_sample_ids(conn, jobs)
    by_job = await fetch_latest_verdicts(conn, job_ids, shared)
    labels = [f"job {job['name'] or job['job_id']}" for job in jobs]
    before, after = job_ids
    return await _in_thread(labels[0], labels[1], by_job[before], by_job[after], settings)


async def _in_thread(
    before_label: str, after_label: str, before: dict[str, Verdicts], after: dict[str, Verdicts], settings: ApiSettings
) -> PairedComparison:
    """The bootstrap is CPU work (tens of milliseconds at the default resamples): off the event loop."""
    resamples, seed = settings.bootstrap_resamples, settings.bootstrap_seed
    return await asyncio.to_thread(paired_comparison, before_label, after_label, before, after, resamples, seed)
