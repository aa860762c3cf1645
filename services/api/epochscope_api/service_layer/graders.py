"""A grader tried on one answer (POST /v1/graders/run): the runtime `Grader` the trainer runs, so the score is the
one a prediction round or a GRPO reward gives the same text.

Bounded like a job's graders (the schema's rules, `grader_limit_violations`) and on the texts' sizes; graded in a
worker thread under a time limit, so a grader on a long text never holds the event loop.
"""

import asyncio
from collections.abc import Mapping

from epochscope_api.errors import GraderTimedOut
from epochscope_api.jobs.validation import FieldProblem, field_errors
from epochscope_api.settings import ApiSettings
from epochscope_runtime.grading import Grader, Verdict
from epochscope_schemas.config import grader_limit_violations
from epochscope_schemas.graders import GraderConfig


def check_grader_run(
    grader: GraderConfig, prompt: str, answer: str, references: Mapping[str, str], settings: ApiSettings
) -> None:
    """A 422 naming every field past a server limit: the grader's (as in a job config) and each text's length."""
    problems: list[FieldProblem] = [
        (("grader", *loc), message) for loc, message in grader_limit_violations(grader, settings.limits)
    ]
    texts = {("prompt",): prompt, ("answer",): answer} | {
        ("references", name): text for name, text in references.items()
    }
    maximum = settings.grader_run_max_chars
    problems += [
        (loc, f"must be at most {maximum} characters (EPOCHSCOPE_GRADER_RUN_MAX_CHARS); it is {len(text)}")
        for loc, text in texts.items()
        if len(text) > maximum
    ]
    if problems:
        raise field_errors(problems)


async def run_grader(
    grader: GraderConfig, prompt: str, answer: str, references: Mapping[str, str], settings: ApiSettings
) -> Verdict | None:
    """The grader's verdict on `answer`, or None when it had nothing to compare with; checked first."""
    check_grader_run(grader, prompt, answer, references, settings)
    timeout = settings.grader_run_timeout_seconds
    try:
        return await asyncio.wait_for(asyncio.to_thread(Grader(grader), prompt, answer, references), timeout)
    except TimeoutError:
        raise GraderTimedOut(timeout) from None
