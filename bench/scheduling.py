"""Scheduling: submit-to-start time and trainer utilisation under the dispatcher, against the ideal schedule of the
same policy on the same jobs.

Each repeat starts a fresh local stack with 2 CPU trainers and the tests' tiny model, and plays one fixed arrival
trace against it (seeded, the same in every repeat and every run: `trace()`; the JSON records it): short and long
jobs from three users, one of whom submits a burst. Each job trains on one thread (OMP_NUM_THREADS=1): a trainer
owns one of the 2 cores as it would own its GPU, so two jobs at once do not slow each other down by
oversubscription. Times come from the job queue: queued_at (submission), dispatched_at, started_at (the first
`running` event) and finished_at.

The peer is not another production mode: it is the dispatcher's own policy played out without latency
(bench/scheduling_ideal.py) on each repeat's jobs, with their measured start-up and run times, so ours / peer is
what the real dispatcher costs over a perfect one. Rows give the median over repeats of each figure, ours and peer
alike; `repeats` holds every repeat's figures and the 1-minute load during it. Utilisation: run time (running ->
final) over 2 trainers x the makespan (first submission to last end).
"""

import argparse
import random
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from catalog_option import add_models_option, models_option
from common import RESULTS, ResultRow, percentile, print_table, write_results
from scheduling_ideal import Job, ideal_waits
from scheduling_stack import ROOT, TRAINERS, Arrival, Run, mean, run_stack

from epochscope_runtime.catalog import CatalogModel

NAME = "scheduling"
MODE = "dispatcher"
PEER_NAME = "ideal schedule of the same policy (no latency), same jobs"
PER_USER = 2  # the dispatcher's default per_user: a user's jobs dispatched or running at once
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
    repeats: int  # fresh stacks, each playing the whole trace
    smoke: bool = False


FULL = Size(stream=11, mean_gap_s=6.0, burst=5, long_share=0.3, repeats=3)
SMOKE = Size(stream=3, mean_gap_s=1.0, burst=1, long_share=0.0, repeats=1, smoke=True)


def trace(size: Size) -> list[Arrival]:
    """The fixed arrivals, in order: the same for every repeat and every run (its own seeded generator)."""
    rng = random.Random(SEED)

    def job(at: float, user: str) -> Arrival:
        long = rng.random() < size.long_share
        return Arrival(round(at, 3), user, LONG if long else SHORT, long)

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


def figures(runs: list[Run], waits: list[float]) -> Figures:
    """The figures of one repeat, with `waits` (submit -> start) in the order of `runs`: measured or ideal."""
    makespan = max(run.arrival + wait + run.duration for run, wait in zip(runs, waits, strict=True))
    busy = sum(run.duration for run in runs)
    return Figures(
        p50=percentile(waits, 50),
        p95=percentile(waits, 95),
        mean=mean(waits),
        burst_user_mean=mean([wait for run, wait in zip(runs, waits, strict=True) if run.user == BURST_USER]),
        others_mean=mean([wait for run, wait in zip(runs, waits, strict=True) if run.user != BURST_USER]),
        utilisation=busy / (TRAINERS * makespan),
        makespan=makespan,
    )


def ideal(runs: list[Run]) -> list[float]:
    jobs = [Job(run.arrival, run.user, run.startup, run.duration) for run in runs]
    return ideal_waits(jobs, TRAINERS, PER_USER)


def result_rows(measured: list[Figures], ideals: list[Figures], load: float) -> list[ResultRow]:
    def row(metric: str, unit: str, field: str, better: str | None = None) -> ResultRow:
        ours = statistics.median(getattr(f, field) for f in measured)
        peer = statistics.median(getattr(f, field) for f in ideals)
        return ResultRow(metric, unit, ours, peer, PEER_NAME, better=better, load_average_1m=load)

    return [
        row("submit -> start, p50", "s", "p50"),
        row("submit -> start, p95", "s", "p95"),
        row("submit -> start, mean", "s", "mean"),
        row(f"submit -> start, mean, {BURST_USER} (burst)", "s", "burst_user_mean"),
        row("submit -> start, mean, the other users", "s", "others_mean"),
        row("trainer utilisation", "fraction", "utilisation", better="higher"),
        row("makespan", "s", "makespan"),
    ]


def run(size: Size, results_dir: Path, catalog: list[CatalogModel] | None = None) -> Path:
    """On `catalog`'s first model (default: the tests' tiny model, built here)."""
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    arrivals = trace(size)
    repeats = []
    try:
        if catalog is None:
            sys.path.insert(0, str(ROOT / "tests"))
            from tiny_model import build_tiny_model, tiny_catalog

            catalog = tiny_catalog(build_tiny_model(root / "model"))
        for repeat in range(size.repeats):
            runs, loads = run_stack(catalog, arrivals, root / f"repeat-{repeat}")
            repeats.append({"runs": runs, "load": round(mean(loads), 2)})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    measured = [figures(r["runs"], [run.start for run in r["runs"]]) for r in repeats]
    ideals = [figures(r["runs"], ideal(r["runs"])) for r in repeats]
    rows = result_rows(measured, ideals, round(mean([r["load"] for r in repeats]), 2))
    print_table(f"{NAME} ({len(arrivals)} jobs, {TRAINERS} trainers, {size.repeats} repeats, median)", rows)
    params = {
        **asdict(size),
        "jobs": len(arrivals),
        "long_jobs": sum(arrival.long for arrival in arrivals),
        "trainers": TRAINERS,
        "per_user": PER_USER,
        "users": list(USERS),
        "burst_user": BURST_USER,
        "short": SHORT,
        "long": LONG,
        "seed": SEED,
    }
    per_repeat = [
        {
            "load_average_1m": r["load"],
            "measured": asdict(m),
            "ideal": asdict(i),
            "runs": [asdict(run) for run in r["runs"]],
        }
        for r, m, i in zip(repeats, measured, ideals, strict=True)
    ]
    trace_json = [asdict(arrival) for arrival in arrivals]
    return write_results(NAME, params, rows, results_dir, trace=trace_json, repeats=per_repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run (4 jobs, 1 repeat)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, help="fresh stacks playing the trace (default: 3, smoke 1)")
    add_models_option(parser, "the tests' tiny model, built for the run")
    args = parser.parse_args()
    size = SMOKE if args.smoke else FULL
    print(run(replace(size, repeats=args.repeats or size.repeats), args.results_dir, models_option(args)))


if __name__ == "__main__":
    main()
