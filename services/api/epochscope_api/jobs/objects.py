"""A job's own objects in the store (checkpoints and other outputs, under one prefix), deleted with the job.

The datasets a job read are the user's uploads, resources in their own right (DELETE /v1/datasets/{id}): deleting
a job leaves them. Today no job writes objects; checkpoints will go under `job_objects_prefix`, and follow.
"""

import logging
import uuid

import obstore

from epochscope_runtime.object_store import ObjectStore

log = logging.getLogger("epochscope.api")


def job_objects_prefix(job_id: uuid.UUID) -> str:
    """Where the job's own objects live in the store."""
    return f"jobs/{job_id}/"


async def delete_job_objects(store: ObjectStore, job_id: uuid.UUID) -> int:
    """Delete every object under the job's prefix; the number deleted. A failure is logged, never raised: the
    job row is already gone, and its objects are then found by their prefix."""
    deleted = 0
    try:
        async for batch in obstore.list(store, prefix=job_objects_prefix(job_id)):
            paths = [meta["path"] for meta in batch]
            if paths:
                await obstore.delete_async(store, paths)
                deleted += len(paths)
    except FileNotFoundError:
        pass
    except Exception:
        log.exception("could not delete the objects of job %s from the store", job_id)
    return deleted
