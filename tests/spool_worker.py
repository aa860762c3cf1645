"""A process for tests/test_trainer_spool.py to kill -9 at random points.

`spool PATH FIRST`: appends events FIRST, FIRST+1, ... to the spool in small transactions, forever,
printing each id once its transaction has returned (what the spool acknowledged).
`deliver PATH BOOTSTRAP`: delivers the spool to the broker with the trainer's publisher; prints `done`.
"""

import json
import random
import sys
import time
import uuid
from pathlib import Path

from epochscope_trainer.publishing.spool_store import Outgoing, Spool


def event(n: int, job_id: str) -> Outgoing:
    """A job status event whose message carries its number."""
    value = {
        "event_id": str(uuid.UUID(int=n + 1)),
        "type": "job.status",
        "job_id": job_id,
        "status": "running",
        "message": f"event {n}",
    }
    return Outgoing("training.status", job_id, json.dumps(value).encode())


def spool_forever(path: Path, first: int) -> None:
    spool = Spool(path)
    job_id = str(uuid.uuid4())
    n = first
    while True:
        batch = random.randint(1, 5)
        spool.append([event(i, job_id) for i in range(n, n + batch)])
        print(*range(n, n + batch), sep="\n", flush=True)
        n += batch


def deliver(path: Path, bootstrap: str) -> None:
    from epochscope_runtime.kafka import KafkaSettings
    from epochscope_trainer.publishing.spooling_publisher import EventPublisher

    publisher = EventPublisher(KafkaSettings(bootstrap_servers=bootstrap), path, queue_size=10)
    publisher.start()
    while publisher.pending():
        time.sleep(0.01)
    print("done" if publisher.close(10) == 0 else "left", flush=True)


if __name__ == "__main__":
    mode, target, arg = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if mode == "spool":
        spool_forever(target, int(arg))
    else:
        deliver(target, arg)
