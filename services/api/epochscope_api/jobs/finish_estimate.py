"""A running job's estimated finish, from its progress: the pace so far (seconds from its start to its latest
progress point, over the steps done) times the steps left, counted from that point.

The pace includes the start-up (model loading) and the prediction rounds so far, so an early estimate errs late;
it is never earlier than one more step from now (a job running behind its pace is not shown as finished). Null
while the job is not running or has reported no step yet.
"""

from datetime import datetime, timedelta

from epochscope_api.response_models import Job
from epochscope_schemas.events import JobStatus


def estimated_finish(job: Job, now: datetime) -> datetime | None:
    progress = job.progress
    if job.status is not JobStatus.RUNNING or job.started_at is None or progress is None or progress.step <= 0:
        return None
    seconds_per_step = max((progress.occurred_at - job.started_at).total_seconds(), 0.0) / progress.step
    steps_left = max(progress.max_steps - progress.step, 0)
    projected = progress.occurred_at + timedelta(seconds=seconds_per_step * steps_left)
    return max(projected, now + timedelta(seconds=seconds_per_step))
