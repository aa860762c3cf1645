"""Dataset upload: a generated JSONL of chat rows through the real API, against a raw obstore put of the same file.

Each file is uploaded `repeats` times on one fresh local stack (embedded Postgres; the API as its own process, as
`epochscope up` runs it; no writer or trainer), the object store a folder, each upload followed by the peer's put of
the same file, so that both sides see the same load; each figure is the median of its repeats:

- ours: POST /v1/datasets (multipart, streamed from disk by httpx), answered once the file is stored, read back,
  validated with the trainer's reader and indexed: MB/s of the whole request, the CPU seconds of the API process
  and of the scan (its child processes), and how much the API process's resident memory peaked above what it held
  before the upload (VmHWM, reset just before; VmRSS also sampled). The
  default catalog has no tokenizer, so this upload counts no tokens; a second, smaller file is uploaded with the
  tiny test model in the catalog, whose tokenizer and chat template count every row's tokens;
- peer: obstore.put of the same file into a folder store, in a Python process of its own: MB/s, and how much that
  process's resident memory peaked above what it held before the put (VmHWM, reset just before);
- the counted upload's second floor: the tiny model's tokenizer alone, encode_batch_fast of the file's prompts (rendered
  by the chat template beforehand, untimed) and completions in the scan's batches, in this process: what counting
  tokens costs at the least, whatever the upload does around it.

Both sides are warmed alike before they are measured: the API stores a small upload of the file's first rows, the
peer puts the same rows; then each one's peak (VmHWM) is reset, so neither side's figure carries its first-use
allocations and the other's not.

Writes bench/results/upload.json. Usage: python bench/upload.py [--smoke] [--results-dir DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import RESULTS, print_table, write_results
from cpu import cpu_seconds
from memory import RssSampler, memory_kib, reset_peak

from epochscope.local_stack import LocalStack
from epochscope_api.datasets.scan import TOKEN_BATCH
from epochscope_api.datasets.token_counts import load_token_counter
from epochscope_runtime.catalog import CatalogModel
from epochscope_runtime.dataset_rows import Example
from epochscope_runtime.sampler import to_sample

NAME = "upload"
ROOT = Path(__file__).resolve().parent.parent
OWNER = "bench-uploader"
PEER_NAME = "raw obstore.put, same folder store"
TOKENIZER_NAME = "the tiny model's tokenizer alone: encode_batch_fast of the same prompts and completions"
MIB = 1 << 20


@dataclass(frozen=True)
class Size:
    megabytes: int
    counted_megabytes: int  # a second file, uploaded with token counting on

    repeats: int  # uploads of each file, each followed by the peer's put


FULL = Size(megabytes=100, counted_megabytes=5, repeats=3)
SMOKE = Size(megabytes=1, counted_megabytes=1, repeats=1)


def generate(path: Path, megabytes: int) -> int:
    """Chat rows (system, user, assistant) of a few hundred bytes each, up to `megabytes`; the row count."""
    rows = 0
    with path.open("wb") as out:
        while out.tell() < megabytes * MIB:
            row = {
                "messages": [
                    {"role": "system", "content": "You are a booking assistant. Answer with one JSON object."},
                    {"role": "user", "content": f"Book a table for {rows % 12 + 1} at {rows % 24:02d}:00, ref {rows}."},
                    {
                        "role": "assistant",
                        "content": json.dumps({"party": rows % 12 + 1, "time": f"{rows % 24:02d}:00", "ref": rows}),
                    },
                ]
            }
            out.write(json.dumps(row).encode() + b"\n")
            rows += 1
    return rows


PEER_SCRIPT = """
import json, sys, time
from pathlib import Path
import obstore
from obstore.store import LocalStore
def kib(field):
    return next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
store = LocalStore(sys.argv[1], mkdir=True)
obstore.put(store, "peer/warm.jsonl", sys.stdin.buffer.read())  # warmed as the API is: the file's first rows
Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on
before = kib("VmRSS:")
started = time.perf_counter()
obstore.put(store, "peer/upload.jsonl", Path(sys.argv[2]))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "before_kib": before, "peak_kib": kib("VmHWM:")}))
"""


def peer_put(store_dir: Path, file: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", PEER_SCRIPT, str(store_dir), str(file)],
        input=first_rows(file),
        capture_output=True,
        check=True,
    )
    return json.loads(result.stdout)


def first_rows(file: Path) -> bytes:
    """The warm-up both sides get: the whole rows in the file's first 4 KiB."""
    with file.open("rb") as handle:
        return handle.read(4096).rsplit(b"\n", 1)[0]


# A catalog whose one model has no tokenizer: uploads are stored, validated and indexed, with no token counts.
NO_TOKENIZER = [
    CatalogModel(
        id="no-tokenizer", display_name="(none)", source="dir:/unused", parameters=1, context_length=1,
        chat_template=False, tokens_per_second=1,
    )
]  # fmt: skip


def tiny_catalog(scratch: Path) -> list[CatalogModel]:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model, tiny_catalog

    return tiny_catalog(build_tiny_model(scratch / "tiny-model"))


def tokenizer_alone(model_dir: Path, data: Path) -> float:
    """Seconds the tokenizer takes to encode the file's prompts and completions, TOKEN_BATCH rows a call, as the
    scan encodes them (the prompts rendered beforehand, untimed)."""
    counter = load_token_counter(model_dir)
    lines = data.read_bytes().splitlines()
    samples = [to_sample(Example(row, orjson.loads(line)), 0) for row, line in enumerate(lines)]
    texts = [counter.render_prompt(sample) for sample in samples] + [sample.ground_truth or "" for sample in samples]
    started = time.perf_counter()
    for start in range(0, len(texts), TOKEN_BATCH):
        counter.count(texts[start : start + TOKEN_BATCH])
    return time.perf_counter() - started


def load() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass(frozen=True)
class Upload:
    seconds: float
    rss_before_kib: int
    rss_peak_kib: int
    hwm_before_kib: int
    hwm_after_kib: int
    api_cpu_seconds: float
    scan_cpu_seconds: float
    report: dict[str, Any]
    peer: dict[str, Any]  # the raw put of the same file that followed
    load: float


def scan_cpu_seconds(api_pid: int) -> float:
    """CPU seconds of the API's scan children so far: its forkserver's, theirs included once they have ended."""
    tasks = Path(f"/proc/{api_pid}/task")
    children = [pid for task in tasks.iterdir() for pid in (task / "children").read_text().split()]
    total = 0.0
    for pid in children:
        if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(field) for field in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime..cstime
    return total


def uploads_beside_puts(scratch: Path, data: Path, catalog: list[CatalogModel], repeats: int) -> list[Upload]:
    """`repeats` uploads of `data` on a fresh stack (its own folder store), after a small warm-up upload, each
    followed by a raw put of the same file into a folder store of its own."""
    env = {"EPOCHSCOPE_UPLOAD_MAX_BYTES": str(2 * data.stat().st_size)}
    stack = LocalStack(scratch / "stack", writers=0, trainers=0, extra_env=env, models=catalog)
    uploads = []
    try:
        with stack, httpx.Client(base_url=stack.api_url, timeout=3600) as client:
            headers = {"Authorization": f"Bearer {stack.mint_token(OWNER)}"}
            warm = first_rows(data)
            client.post("/v1/datasets", headers=headers, files={"file": ("warm.jsonl", warm)}).raise_for_status()
            pid = stack.service("api").process.pid  # type: ignore[union-attr]
            for repeat in range(repeats):
                reset_peak(pid)
                before_kib, hwm_before_kib = memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM")
                api_cpu, scan_cpu = cpu_seconds(pid), scan_cpu_seconds(pid)
                sampler = RssSampler(pid)
                sampler.start()
                started = time.perf_counter()
                with data.open("rb") as file:
                    response = client.post("/v1/datasets", headers=headers, files={"file": ("chat.jsonl", file)})
                seconds = time.perf_counter() - started
                peak_kib = sampler.stop()
                response.raise_for_status()
                time.sleep(0.2)  # the scan child reaped, its CPU counted in the forkserver's
                api_cpu, scan_cpu = cpu_seconds(pid) - api_cpu, scan_cpu_seconds(pid) - scan_cpu
                peer = peer_put(scratch / f"peer-{repeat}", data)
                hwm_after = memory_kib(pid, "VmHWM")
                uploads.append(
                    Upload(seconds, before_kib, peak_kib, hwm_before_kib, hwm_after, api_cpu, scan_cpu,
                           response.json(), peer, load())
                )  # fmt: skip
    finally:
        stack.delete_data()
    return uploads


def median_mb_s(megabytes: float, seconds: list[float]) -> float:
    return statistics.median(megabytes / second for second in seconds)


def run(size: Size, results_dir: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="epochscope-bench-upload-"))
    try:
        data, counted = scratch / "chat.jsonl", scratch / "chat-counted.jsonl"
        rows = generate(data, size.megabytes)
        counted_rows = generate(counted, size.counted_megabytes)
        plain = uploads_beside_puts(scratch / "plain", data, NO_TOKENIZER, size.repeats)
        catalog = tiny_catalog(scratch)
        tokens = uploads_beside_puts(scratch / "tokens", counted, catalog, size.repeats)
        tokenizer_dir = Path(catalog[0].tokenizer_dir or "")
        tokenizer_seconds = [tokenizer_alone(tokenizer_dir, counted) for _ in range(size.repeats)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if any(up.report["usable_rows"] != rows for up in plain) or tokens[0].report["usable_rows"] != counted_rows:
        raise RuntimeError("the API did not find every row usable")
    megabytes, counted_mb = data_mb(plain[0]), data_mb(tokens[0])
    plain_load = round(statistics.mean(up.load for up in plain), 2)
    counted_load = round(statistics.mean(up.load for up in tokens), 2)
    growth = max(max(up.rss_peak_kib, up.hwm_after_kib) - up.rss_before_kib for up in plain) / 1024
    peer_growth = max(up.peer["peak_kib"] - up.peer["before_kib"] for up in plain) / 1024
    counted_ours = median_mb_s(counted_mb, [up.seconds for up in tokens])
    result_rows = [
        {
            "metric": f"upload MB/s, {megabytes:.0f} MB (stored + validated + indexed)",
            "unit": "MB/s",
            "ours": median_mb_s(megabytes, [up.seconds for up in plain]),
            "peer": median_mb_s(megabytes, [up.peer["seconds"] for up in plain]),
            "peer_name": PEER_NAME,
            "load_average_1m": plain_load,
        },
        {
            "metric": f"resident memory peak above the warmed process's, {megabytes:.0f} MB upload",
            "unit": "MiB",
            "ours": max(growth, 0.001),
            "peer": max(peer_growth, 0.001),
            "peer_name": PEER_NAME,
            "better": "lower",
            "load_average_1m": plain_load,
        },
        {
            "metric": f"upload MB/s, {counted_mb:.0f} MB, tokens counted with the tiny model",
            "unit": "MB/s",
            "ours": counted_ours,
            "peer": median_mb_s(counted_mb, [up.peer["seconds"] for up in tokens]),
            "peer_name": PEER_NAME,
            "load_average_1m": counted_load,
        },
        {
            "metric": f"upload MB/s, {counted_mb:.0f} MB, tokens counted, against the tokenizer alone",
            "unit": "MB/s",
            "ours": counted_ours,
            "peer": median_mb_s(counted_mb, tokenizer_seconds),
            "peer_name": TOKENIZER_NAME,
            "load_average_1m": counted_load,
        },
    ]
    params = {
        "smoke": size is SMOKE,
        "file_megabytes": round(megabytes, 1),
        "rows": rows,
        "counted_file_megabytes": round(counted_mb, 1),
        "counted_rows": counted_rows,
        "format": "jsonl chat",
        "store": "local folder",
        "repeats": size.repeats,
    }
    extra = {
        "api_rss_mib": [
            {
                "before": round(up.rss_before_kib / 1024, 1),
                "peak_during_upload": round(up.rss_peak_kib / 1024, 1),
                "vmhwm_before": round(up.hwm_before_kib / 1024, 1),
                "vmhwm_after": round(up.hwm_after_kib / 1024, 1),
            }
            for up in plain
        ],
        "seconds": {
            "ours": [round(up.seconds, 2) for up in plain],
            "peer": [round(up.peer["seconds"], 3) for up in plain],
            "counted_ours": [round(up.seconds, 2) for up in tokens],
            "counted_peer": [round(up.peer["seconds"], 3) for up in tokens],
            "counted_tokenizer_alone": [round(seconds, 2) for seconds in tokenizer_seconds],
        },
        "cpu_seconds": {
            "api": [round(up.api_cpu_seconds, 2) for up in plain],
            "scan": [round(up.scan_cpu_seconds, 2) for up in plain],
            "counted_api": [round(up.api_cpu_seconds, 2) for up in tokens],
            "counted_scan": [round(up.scan_cpu_seconds, 2) for up in tokens],
        },
        "load_average_1m": {"ours": [up.load for up in plain], "counted": [up.load for up in tokens]},
        "tokens": tokens[0].report["report"]["tokens"],
        "notes": [
            "each figure is the median of its repeats, each upload followed by the peer's put of the same file",
            "the scan reads a JSONL body while it arrives (a child process fed through a pipe): the API's and the"
            " scan's CPU seconds overlap in time",
            "the tiny test model's tokenizer (a 400-token BPE) is slow per byte; it dominates the counted upload: the"
            " last row compares the upload with that tokenizer alone on the same texts",
        ],
    }
    print_table(f"Dataset upload ({rows:,} chat rows): API vs {PEER_NAME}", result_rows)
    path = write_results(NAME, params, result_rows, results_dir, **extra)
    print(path)
    return path


def data_mb(upload: Upload) -> float:
    return upload.report["bytes"] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that the benchmark works")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    run(SMOKE if args.smoke else FULL, args.results_dir)


if __name__ == "__main__":
    main()
