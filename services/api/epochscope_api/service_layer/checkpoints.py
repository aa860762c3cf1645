"""Which checkpoint is best: by the job's own metric (as the trainer measured it), or by the user's verdicts.

Ranked by the user's verdicts, a round's `human` pass rate counts by the low end of its Wilson 95% interval, so
that 1 good answer of 1 judged does not beat 9 of 10; rounds without verdicts are not ranked; a tie goes to the
earlier round (as the job's metric does). The verdicts are read now, so judging more answers can change the best.
"""

import uuid

import asyncpg

from epochscope_api.data.checkpoints import fetch_checkpoints
from epochscope_api.data.rounds import fetch_rounds
from epochscope_api.data.verdicts import HUMAN
from epochscope_api.response_models import CheckpointList, HumanRanking
from epochscope_api.service_layer.significance import wilson_lower_bound


async def checkpoints_ranked_by_human(conn: asyncpg.Connection, job_id: uuid.UUID) -> CheckpointList:
    """The job's checkpoints, each with its round's verdicts, the best by their pass rate's lower bound."""
    listed = await fetch_checkpoints(conn, job_id)
    rankings: dict[int, HumanRanking] = {}
    for summary in await fetch_rounds(conn, job_id):
        human = (summary.graders or {}).get(HUMAN)
        if human is not None and human.graded:
            rankings[summary.round_index] = HumanRanking(
                graded=human.graded,
                passed=human.passed,
                pass_rate=human.passed / human.graded,
                lower_bound=wilson_lower_bound(human.passed, human.graded),
            )
    ranked = [
        (rankings[c.round_index].lower_bound, c.round_index, c.checkpoint_id)
        for c in listed.items
        if not c.final and c.round_index in rankings
    ]
    best = min(ranked, key=lambda entry: (-entry[0], entry[1]))[2] if ranked else None
    items = [
        c.model_copy(update={"best": c.checkpoint_id == best, "human": rankings.get(c.round_index)})
        for c in listed.items
    ]
    return CheckpointList(metric=f"grader_pass_rate:{HUMAN}", items=items, best_checkpoint_id=best)
