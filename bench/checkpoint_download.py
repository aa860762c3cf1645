"""Checkpoint download: the API process's resident memory while it streams a 256 MiB checkpoint, against its size.

One local stack (embedded Postgres, broker, the API as its own process with one worker, the writer, one trainer;
the object store a folder). The checkpoint is a real one: a tiny Llama made wide enough that its weights are about
256 MiB of safetensors (hidden 1024, 4 layers, float32) is fine-tuned for one epoch by the trainer, which saves
the round's weights, uploads them to the store and announces them; the writer records the row. Nothing is faked
on the API's side.

- ours: GET /v1/jobs/{id}/checkpoints/{checkpoint_id}/download, read by the client in chunks and discarded, while a
  thread samples the API process's VmRSS every 20 ms: the RSS before, its peak, the growth, the growth against the
  checkpoint's size, and MB/s. The first download after the stack started is measured (nothing warmed up but a
  list request), then a second one;
- peer: obstore.get of the same objects from the same folder store, streamed in the same 1 MiB chunks, in a fresh
  Python process: MB/s and the growth of that process's peak resident memory.

Writes bench/results/checkpoint_download.json.
Usage: python bench/checkpoint_download.py [--smoke] [--results-dir DIR]   (--smoke: a 2-layer, 512-wide model)
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import RESULTS, print_table, write_results
from job_wait import completed_job
from memory import RssSampler, memory_kib

from epochscope.local_stack import LocalStack

NAME = "checkpoint_download"
ROOT = Path(__file__).resolve().parent.parent
OWNER = "bench-downloader"
PEER_NAME = "obstore.get of the same objects, streamed"
MIB = 1 << 20


@dataclass(frozen=True)
class Size:
    hidden: int
    intermediate: int
    layers: int


FULL = Size(hidden=1024, intermediate=4096, layers=4)  # about 67 M parameters: 256 MiB in float32
SMOKE = Size(hidden=512, intermediate=1024, layers=2)  # about 22 MB: several times what a download may grow by


def wide_model(scratch: Path, size: Size) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model

    return build_tiny_model(
        scratch / "model", hidden_size=size.hidden, intermediate_size=size.intermediate, layers=size.layers
    )


def train_with_checkpoint(client: httpx.Client, model_id: str) -> tuple[str, dict[str, Any]]:
    """A one-epoch full fine-tune keeping its round's weights; the job id and that round's checkpoint."""
    sys.path.insert(0, str(ROOT / "tests"))
    from uploads import chat_rows

    files = {"file": ("train.jsonl", chat_rows(8), "application/octet-stream")}
    dataset = client.post("/v1/datasets", files=files).raise_for_status().json()
    config = {
        "model": model_id,
        "dataset_id": dataset["dataset_id"],
        "num_epochs": 1,
        "batch_size": 4,
        "max_length": 32,
        "predictions": {
            "enabled": True,
            "sample_count": 1,
            "max_new_tokens": 1,
            "baseline_round": False,
            "checkpoints": {"mode": "every_round"},
        },
    }
    job_id = client.post("/v1/jobs", json=config).raise_for_status().json()["job_id"]
    completed_job(client, job_id, timeout_s=1800)
    listed = client.get(f"/v1/jobs/{job_id}/checkpoints").raise_for_status().json()
    return job_id, next(c for c in listed["items"] if not c["final"])


@dataclass(frozen=True)
class Download:
    bytes: int
    seconds: float
    rss_before_kib: int
    rss_peak_kib: int

    @property
    def growth_mib(self) -> float:
        return max(self.rss_peak_kib - self.rss_before_kib, 0) / 1024


def download(client: httpx.Client, pid: int, job_id: str, checkpoint_id: str) -> Download:
    """The tar streamed and discarded chunk by chunk while the API's RSS is sampled."""
    before = memory_kib(pid, "VmRSS")
    sampler = RssSampler(pid)
    sampler.start()
    received = 0
    started = time.perf_counter()
    with client.stream("GET", f"/v1/jobs/{job_id}/checkpoints/{checkpoint_id}/download") as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(chunk_size=MIB):
            received += len(chunk)
    seconds = time.perf_counter() - started
    return Download(received, seconds, before, sampler.stop())


PEER_SCRIPT = """
import json, sys, time
from pathlib import Path
import obstore
from obstore.store import LocalStore
def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
store = LocalStore(sys.argv[1])
keys = json.loads(sys.argv[2])
before = kib("VmRSS:")
received = 0
started = time.perf_counter()
for key in keys:
    for chunk in obstore.get(store, key).stream(min_chunk_size=1 << 20):
        received += len(chunk)
seconds = time.perf_counter() - started
print(json.dumps({"bytes": received, "seconds": seconds, "before_kib": before, "peak_kib": kib("VmHWM:")}))
"""


def peer_read(store_dir: Path, keys: list[str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PEER_SCRIPT, str(store_dir), json.dumps(keys)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def run(size: Size, results_dir: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="epochscope-bench-ckpt-download-"))
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import tiny_catalog

    catalog = tiny_catalog(wide_model(scratch, size))
    stack = LocalStack(
        scratch / "stack", writers=1, trainers=1, extra_env={"EPOCHSCOPE_API_WORKERS": "1"}, models=catalog
    )
    try:
        with stack, httpx.Client(base_url=stack.api_url, timeout=600) as client:
            client.headers["Authorization"] = f"Bearer {stack.mint_token(OWNER)}"
            job_id, checkpoint = train_with_checkpoint(client, catalog[0].id)
            pid = stack.service("api").process.pid  # type: ignore[union-attr]
            first = download(client, pid, job_id, checkpoint["checkpoint_id"])
            second = download(client, pid, job_id, checkpoint["checkpoint_id"])
            prefix = f"jobs/{job_id}/checkpoints/round-{checkpoint['round_index']}"
            peer = peer_read(stack.object_store_dir, [f"{prefix}/{f['name']}" for f in checkpoint["files"]])
    finally:
        stack.delete_data()
        shutil.rmtree(scratch, ignore_errors=True)
    size_mib = checkpoint["bytes"] / MIB
    if peer["bytes"] != checkpoint["bytes"] or first.bytes < checkpoint["bytes"]:
        raise RuntimeError("a download returned fewer bytes than the checkpoint holds")
    peer_growth_mib = max(peer["peak_kib"] - peer["before_kib"], 0) / 1024
    rows = [
        {
            "metric": f"API RSS growth downloading a {size_mib:.0f} MiB checkpoint (first download)",
            "unit": "MiB",
            "ours": round(first.growth_mib, 2),
            "peer": round(size_mib, 2),
            "peer_name": "the checkpoint's size",
            "better": "lower",
        },
        {
            "metric": "resident memory growth while reading the checkpoint (first download)",
            "unit": "MiB",
            "ours": round(max(first.growth_mib, 0.001), 3),
            "peer": round(max(peer_growth_mib, 0.001), 3),
            "peer_name": PEER_NAME,
            "better": "lower",
        },
        {
            "metric": "download MB/s (tar through the API, first download)",
            "unit": "MB/s",
            "ours": round(first.bytes / 1e6 / first.seconds, 1),
            "peer": round(peer["bytes"] / 1e6 / peer["seconds"], 1),
            "peer_name": PEER_NAME,
        },
        {
            "metric": "download MB/s (tar through the API, second download)",
            "unit": "MB/s",
            "ours": round(second.bytes / 1e6 / second.seconds, 1),
            "peer": round(peer["bytes"] / 1e6 / peer["seconds"], 1),
            "peer_name": PEER_NAME,
        },
    ]
    params = {
        "smoke": size is SMOKE,
        "model": f"tiny Llama, hidden {size.hidden}, intermediate {size.intermediate}, {size.layers} layers, float32",
        "checkpoint_bytes": checkpoint["bytes"],
        "files": {f["name"]: f["bytes"] for f in checkpoint["files"]},
        "api_workers": 1,
        "store": "local folder",
        "client_chunk_bytes": MIB,
    }
    extra = {
        "api_rss_mib": {
            label: {
                "before": round(d.rss_before_kib / 1024, 1),
                "peak": round(d.rss_peak_kib / 1024, 1),
                "growth": round(d.growth_mib, 2),
                "growth_over_checkpoint_size": round(d.growth_mib / size_mib, 4),
            }
            for label, d in (("first_download", first), ("second_download", second))
        },
        "seconds": {
            "first": round(first.seconds, 2),
            "second": round(second.seconds, 2),
            "peer": round(peer["seconds"], 2),
        },
    }
    print_table(f"Checkpoint download ({size_mib:.0f} MiB): API RSS and rate vs {PEER_NAME}", rows)
    path = write_results(NAME, params, rows, results_dir, **extra)
    print(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small model, to check that the benchmark works")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    run(SMOKE if args.smoke else FULL, args.results_dir)


if __name__ == "__main__":
    main()
