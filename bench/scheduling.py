"""Scheduling: submit-to-start time and trainer utilisation, the dispatcher against the old group intake, both run.

One script run starts two local stacks, one after the other (never at once: the machine's cores are the trainers'),
each with 2 CPU trainers and the tests' tiny model, and plays the same seeded arrival trace against each: short and
long jobs from three users, one of whom submits a burst. Each job trains on one thread (OMP_NUM_THREADS=1): a trainer
owns one of the 2 cores as it would own its GPU, so two jobs at once do not slow each other down by oversubscription.
- Ours, the dispatcher (EPOCHSCOPE_DISPATCH=fair): trainers heartbeat; a start goes to a free trainer, users in turn.
- The peer, today's consumer-group intake, run for real: the API publishes each start at submission
  (EPOCHSCOPE_DISPATCH=immediate) and the trainers share one "trainers" consumer group over the 4 partitions of
  jobs.commands (EPOCHSCOPE_TRAINER_INTAKE=group): a job's key picks its partition, hence its trainer, which runs
  its partitions' jobs in arrival order, one at a time, and commits after each.
Both are measured alike, from the job queue: queued_at (submission), started_at (the first `running` event) and
finished_at. Utilisation: run time (running -> final) over 2 trainers x the makespan (first submission to last end).
"""

import argparse
import random
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from common import RESULTS, ResultRow, percentile, print_table, write_results
from scheduling_stack import MODES, ROOT, TRAINERS, Arrival, Run, mean, run_stack

from epochscope.local_stack import PARTITIONS

NAME = "scheduling"
PEER_NAME = "old consumer-group intake (run)"
USERS = ("ann", "ben", "cat")
BURST_USER = "ben"
SHORT = {"epochs": 1, "rows": 8}
LONG = {"epochs": 2, "rows": 64}
SEED = 17


@dataclass(frozen=True)
class Size:
    stream: int  # jobs arriving one by one, from any user
    mean_gap_s: float  # between the stream's arrivals (exponential)
    burst: int  # jobs BURST_USER submits at once, a quarter into the stream
    long_share: float
    smoke: bool = False


FULL = Size(stream=11, mean_gap_s=6.0, burst=5, long_share=0.3)
SMOKE = Size(stream=3, mean_gap_s=1.0, burst=1, long_share=0.0, smoke=True)


def trace(size: Size) -> list[Arrival]:
    """The seeded arrivals, in order: the same for both stacks."""
    rng = random.Random(SEED)

    def job(at: float, user: str) -> Arrival:
        long = rng.random() < size.long_share
        return Arrival(at, user, LONG if long else SHORT, long)

    at, arrivals = 0.0, []
    for index in range(size.stream):
        if index == size.stream // 4:
            arrivals += [job(at, BURST_USER) for _ in range(size.burst)]
        arrivals.append(job(at, rng.choice(USERS)))
        at += rng.expovariate(1 / size.mean_gap_s)
    return arrivals


@dataclass(frozen=True)
class Figures:
    p50: float
    p95: float
    mean: float
    burst_user_mean: float  # BURST_USER's jobs: fair share serves the others between them
    others_mean: float
    utilisation: float
    makespan: float


def figures(runs: list[Run]) -> Figures:
    waits = [run.start for run in runs]
    makespan = max(run.arrival + run.start + run.duration for run in runs)
    busy = sum(run.duration for run in runs)
    return Figures(
        p50=percentile(waits, 50),
        p95=percentile(waits, 95),
        mean=mean(waits),
        burst_user_mean=mean([run.start for run in runs if run.user == BURST_USER]),
        others_mean=mean([run.start for run in runs if run.user != BURST_USER]),
        utilisation=busy / (TRAINERS * makespan),
        makespan=makespan,
    )


def run(size: Size, results_dir: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model, tiny_catalog

    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    arrivals = trace(size)
    try:
        catalog = tiny_catalog(build_tiny_model(root / "model"))
        measured = {mode: run_stack(mode, catalog, arrivals, root) for mode in MODES}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs = {mode: mode_runs for mode, (mode_runs, _) in measured.items()}
    loads = {mode: round(mean(mode_loads), 2) for mode, (_, mode_loads) in measured.items()}
    ours, peer = figures(runs["dispatcher"]), figures(runs["old_intake"])
    rows = [
        ResultRow("submit -> start, p50", "s", ours.p50, peer.p50, PEER_NAME),
        ResultRow("submit -> start, p95", "s", ours.p95, peer.p95, PEER_NAME),
        ResultRow("submit -> start, mean", "s", ours.mean, peer.mean, PEER_NAME),
        ResultRow(
            f"submit -> start, mean, {BURST_USER} (burst)", "s", ours.burst_user_mean, peer.burst_user_mean, PEER_NAME
        ),
        ResultRow("submit -> start, mean, the other users", "s", ours.others_mean, peer.others_mean, PEER_NAME),
        ResultRow("trainer utilisation", "fraction", ours.utilisation, peer.utilisation, PEER_NAME, better="higher"),
        ResultRow("makespan", "s", ours.makespan, peer.makespan, PEER_NAME),
    ]
    print_table(f"{NAME} ({len(arrivals)} jobs, {TRAINERS} trainers, ours = dispatcher)", rows)
    params = {
        **asdict(size),
        "jobs": len(arrivals),
        "long_jobs": sum(arrival.long for arrival in arrivals),
        "trainers": TRAINERS,
        "partitions": PARTITIONS,
        "users": list(USERS),
        "burst_user": BURST_USER,
        "short": SHORT,
        "long": LONG,
        "seed": SEED,
    }
    by_mode = {mode: [asdict(r) for r in mode_runs] for mode, mode_runs in runs.items()}
    return write_results(NAME, params, rows, results_dir, load_average_1m_during_run=loads, runs=by_mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run (4 jobs on each stack)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
