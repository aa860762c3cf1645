"""Verdicts' use cases: a user judges a prediction good or bad (with a note and a corrected answer, each bounded by
a setting), changes or removes that verdict, and reads a job's verdicts."""

import uuid

import asyncpg

from epochscope_api.data.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.verdicts import fetch_verdict_page, upsert_verdict
from epochscope_api.jobs.validation import FieldProblem, field_errors
from epochscope_api.settings import ApiSettings
from epochscope_api.verdict_models import Verdict, VerdictPage, VerdictRequest


def check_verdict(request: VerdictRequest, settings: ApiSettings) -> None:
    """A 422 naming each text past its setting or holding a NUL (which Postgres cannot store)."""
    limits = {
        "note": (request.note, settings.verdict_note_max_chars, "EPOCHSCOPE_VERDICT_NOTE_MAX_CHARS"),
        "correction": (
            request.correction,
            settings.verdict_correction_max_chars,
            "EPOCHSCOPE_VERDICT_CORRECTION_MAX_CHARS",
        ),
    }
    problems: list[FieldProblem] = []
    for field, (value, maximum, setting) in limits.items():
        if value is None:
            continue
        if len(value) > maximum:
            problems.append(((field,), f"must be at most {maximum} characters ({setting}); it is {len(value)}"))
        elif "\x00" in value:
            problems.append(((field,), "must not contain a NUL character"))
    if problems:
        raise field_errors(problems)


async def set_verdict(
    conn: asyncpg.Connection,
    user_id: str,
    job_id: uuid.UUID,
    step: int,
    sample_id: str,
    request: VerdictRequest,
    settings: ApiSettings,
) -> tuple[Verdict, bool]:
    """The verdict set (or changed) on one prediction, and whether it is new; checked first."""
    check_verdict(request, settings)
    await ensure_job(conn, job_id)
    fields, created = await upsert_verdict(
        conn, user_id, job_id, step, sample_id, request.good, request.note, request.correction
    )
    return Verdict.model_validate(fields), created


async def list_verdicts(
    conn: asyncpg.Connection, job_id: uuid.UUID, sample_id: str | None, cursor: str | None, limit: int
) -> VerdictPage:
    """Up to `limit` of the job's verdicts (one sample's, when given) after `cursor`."""
    await ensure_job(conn, job_id)
    after = decode_cursor(cursor, INT4, text) if cursor else (-1, "")
    rows = await fetch_verdict_page(conn, job_id, sample_id, (after[0], after[1]), limit + 1)
    items = [Verdict.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return VerdictPage(items=items, next_cursor=encode_cursor([items[-1].step, items[-1].sample_id]) if more else None)
