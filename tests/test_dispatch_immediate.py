"""EPOCHSCOPE_DISPATCH=immediate on a real stack: the old intake's way, kept for comparison (bench/scheduling.py).
A job's start goes out at submission to the trainers' consumer group, and a group-intake trainer that never
heartbeats (the fair dispatcher would never send it a job) runs it."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from own_stack import own_stack
from test_end_to_end import wait_for_final_status
from test_scheduling import SHORT, Users, queue_row

from epochscope.local_stack import LocalStack
from epochscope_api.queue.dispatcher import GROUP_ADDRESS

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {
        "EPOCHSCOPE_DISPATCH": "immediate",
        "EPOCHSCOPE_TRAINER_INTAKE": "group",
        "EPOCHSCOPE_TRAINER_HEARTBEAT_S": "0",
        "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.3",
    }
    with own_stack("epochscope-immediate-", tiny_model_dir, env, trainers=1) as stack:
        yield stack


async def test_the_start_goes_to_the_group_at_submission_and_a_group_trainer_runs_it(stack: LocalStack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        job_id = await Users(stack, client).submit("ivy", SHORT)
        sent = await queue_row(stack, job_id)
        assert sent["state"] != "queued" and sent["attempt_no"] == 1, dict(sent)
        assert sent["trainer_id"] == GROUP_ADDRESS and sent["dispatched_at"] == sent["queued_at"]
        job = await wait_for_final_status(client, job_id, stack.mint_token("ivy"))
    assert job["status"] == "completed", job
    done = await queue_row(stack, job_id)
    assert done["state"] == "final" and done["attempt_id"] == sent["attempt_id"] and done["started_at"] is not None
