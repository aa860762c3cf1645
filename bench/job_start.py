"""A job's start: its child started afresh (`python -m epochscope_trainer.job.runner`, as torchrun's ranks still are)
against forked from the trainer's warm process (`service/warm_launcher.py`), side by side in interleaved repeats.

Each job is the same small SFT job on the tiny model (tests/tiny_model.py), run by the real runner in a job folder
the way the trainer service prepares one (config, inputs staged, a 0600 identity for the forked child), through the
service's own launchers; its events land in the job's spool, where their times are read. Figures per job:

- start: from the launcher's start to the job's first event (the runner's "loading the model and the data"),
  the part a user waits on between submitting a job and it running that the warm process removes;
- first progress: from the launcher's start to the first progress event (the model loaded and a step trained);
- CPU-seconds: the trainer's launch plus the job's process (the fresh child reaped by us; the forked one reaped by
  the warm process, read from its cutime/cstime), the warm process's one-time imports apart (in params).

Usage: python bench/job_start.py [--repeats N] [--smoke] [--results-dir DIR]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from common import RESULTS, ResultRow, print_table, write_results
from cpu import TICKS_PER_SECOND

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from tiny_model import build_tiny_model  # noqa: E402
from trainer_fakes import chat_rows, dir_model, jsonl_bytes, local_store, put_dataset, start_event  # noqa: E402

from epochscope_schemas.events import JobStatusEvent, ProgressEvent, parse_event  # noqa: E402
from epochscope_trainer.child_protocol import INPUTS_DIR, LOG_FILE, job_command, prepare_job_dir  # noqa: E402
from epochscope_trainer.input_staging import stage_inputs  # noqa: E402
from epochscope_trainer.publishing.spool_store import Spool  # noqa: E402
from epochscope_trainer.service.child_launcher import ChildLauncher, SubprocessLauncher  # noqa: E402
from epochscope_trainer.service.warm_launcher import WarmLauncher  # noqa: E402

NAME = "job_start"
JOB = {"num_epochs": 1, "batch_size": 4, "max_length": 32, "predictions": {"enabled": False}}


def process_cpu_s(pid: int) -> float:
    """A process's CPU seconds with those of the children it has reaped (utime, stime, cutime, cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(field) for field in fields[11:15]) / TICKS_PER_SECOND


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Side:
    def __init__(self, name: str, launcher: ChildLauncher) -> None:
        self.name, self.launcher = name, launcher
        self.jobs: list[dict[str, float]] = []

    def cpu_s(self) -> float:
        """Ours (the fresh children we reap included), plus the warm process's with the children it reaped."""
        warm = getattr(self.launcher, "_process", None)
        return own_cpu_s() + (process_cpu_s(warm.pid) if warm is not None and warm.returncode is None else 0.0)

    async def run_job(self, work: Path, store: Any, train: Any, model: Any) -> dict[str, float]:
        event = start_event(JOB, train, model)
        job_dir = prepare_job_dir(work, event)
        stage_inputs(store, event.inputs, job_dir / INPUTS_DIR)
        cpu_before, started = self.cpu_s(), time.time()
        with open(job_dir / LOG_FILE, "ab") as job_log:
            child = await self.launcher.start(job_dir, event, job_log)
        code = await child.wait()
        cpu_s = self.cpu_s() - cpu_before
        if code != 0:
            raise RuntimeError(f"{self.name}: the job exited with {code}: {(job_dir / LOG_FILE).read_text()[-2000:]}")
        events = [parse_event(spooled.item.value) for spooled in Spool(job_dir / "spool.sqlite").head(10_000)]
        first = min(e.occurred_at for e in events if isinstance(e, JobStatusEvent))
        progress = min(e.occurred_at for e in events if isinstance(e, ProgressEvent))
        return {
            "start_s": _since(started, first),
            "first_progress_s": _since(started, progress),
            "cpu_s": cpu_s,
            "load": os.getloadavg()[0],
        }


def _since(started: float, moment: datetime) -> float:
    return moment.timestamp() - started


async def measure(repeats: int) -> tuple[list[ResultRow], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="epochscope-bench-job-start-") as scratch_dir:
        scratch = Path(scratch_dir)
        _, store = local_store(scratch / "store")
        train = put_dataset(store, jsonl_bytes(chat_rows(8)))
        model = dir_model(build_tiny_model(scratch / "tiny-model"))
        fresh = Side("fresh process", SubprocessLauncher(partial(job_command, processes=1)))
        warm = Side("forked from the warm process", WarmLauncher())
        try:
            warm_up = await warm.run_job(scratch / "work", store, train, model)  # its imports: once per trainer
            for _ in range(repeats):
                for side in (fresh, warm):
                    side.jobs.append(await side.run_job(scratch / "work", store, train, model))
        finally:
            await warm.launcher.close()
    rows = [
        _row(metric, unit, key, warm, fresh)
        for metric, unit, key in (
            ("job start to its first event", "s", "start_s"),
            ("job start to its first progress event", "s", "first_progress_s"),
            ("CPU-seconds per job (trainer + job process)", "s", "cpu_s"),
        )
    ]
    params = {
        "repeats": repeats,
        "job": JOB,
        "model": "tiny (tests/tiny_model.py)",
        "first_warm_job": {key: round(value, 2) for key, value in warm_up.items()},
        "jobs": {side.name: side.jobs for side in (fresh, warm)},
    }
    return rows, params


def _row(metric: str, unit: str, key: str, ours: Side, peer: Side) -> ResultRow:
    load = statistics.mean(job["load"] for side in (ours, peer) for job in side.jobs)
    return ResultRow(
        metric=f"{metric}, median of {len(ours.jobs)}",
        unit=unit,
        ours=round(statistics.median(job[key] for job in ours.jobs), 2),
        peer=round(statistics.median(job[key] for job in peer.jobs), 2),
        peer_name="the job's process started afresh (python -m epochscope_trainer.job.runner)",
        better="lower",
        load_average_1m=round(load, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one repeat, results to a scratch folder")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    repeats = 1 if args.smoke else args.repeats
    rows, params = asyncio.run(measure(repeats))
    print_table("A job's start: forked from the warm process (ours) against a fresh process", rows)
    print(json.dumps(params["first_warm_job"]))
    if not args.smoke:
        print(f"written: {write_results(NAME, params, rows, args.results_dir)}")


if __name__ == "__main__":
    main()
