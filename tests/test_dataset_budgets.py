"""The row reader's decoded-bytes budgets (per row, per file) and the upload scan's child process (memory limit,
timeout): a few hundred bytes of Parquet that decode to gigabytes, a JSONL or CSV line as long as the file, each
refused quickly, naming the row and the setting, with the reader's memory measured in a fresh process."""

import gc
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from obstore.store import LocalStore
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from epochscope_api.datasets.isolation import run_isolated
from epochscope_api.datasets.scan import scan_dataset
from epochscope_api.datasets.token_counts import TokenCounter
from epochscope_api.errors import UnusableUpload
from epochscope_api.settings import ApiSettings
from epochscope_runtime.dataset_limits import DatasetLimits, OverBudget
from epochscope_runtime.dataset_rows import Example, FileType, read_rows

MiB = 1 << 20
BENCH = Path(__file__).resolve().parent.parent / "bench"  # memory.py: a process's RSS and peak

READ_AND_MEASURE = textwrap.dedent(
    """
    import json, os, sys, time
    from epochscope_runtime.dataset_rows import FileType, read_rows
    from epochscope_runtime.dataset_limits import OverBudget
    import io, pyarrow, pyarrow.parquet

    warm = io.BytesIO()  # pyarrow's first read sets up its pools: not what is measured
    pyarrow.parquet.write_table(pyarrow.table({"text": ["t"]}), warm)
    list(read_rows(io.BytesIO(warm.getvalue()), FileType.PARQUET))

    from memory import memory_kib, reset_peak  # bench/memory.py, on this process's PYTHONPATH

    pid = os.getpid()
    before = memory_kib(pid) * 1024
    reset_peak(pid)  # the peak (VmHWM) starts again from here
    started = time.monotonic()
    try:
        with open(sys.argv[1], "rb") as file:
            rows = sum(1 for _ in read_rows(file, FileType(sys.argv[2])))
        outcome = f"read {rows} rows"
    except OverBudget as exc:
        outcome = str(exc)
    grown = memory_kib(pid, "VmHWM") * 1024 - before
    print(json.dumps({"outcome": outcome, "grown": grown, "seconds": time.monotonic() - started}))
    """
)


def read_in_fresh_process(path: Path, file_type: FileType, **limits: int) -> dict:
    """What reading the file gives, how much the reading process's peak memory grew, and how long it took."""
    env = {**os.environ, **{f"EPOCHSCOPE_DATASET_{name.upper()}": str(value) for name, value in limits.items()}}
    env["PYTHONPATH"] = str(BENCH)
    done = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(path), file_type.value],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def parquet_bomb(value_bytes: int, rows: int) -> bytes:
    """One large string, dictionary-encoded and compressed, on every row: a few hundred bytes. Without the arrow
    schema in the file (as other writers make it), a plain reader expands the dictionary on every row."""
    value = pa.array(["p" * value_bytes])
    indices = pa.array([0] * rows, pa.int32())
    table = pa.table(
        {
            "prompt": pa.DictionaryArray.from_arrays(indices, value),
            "completion": pa.DictionaryArray.from_arrays(indices, pa.array(["c"])),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", store_schema=False)
    return out.getvalue()


def test_a_small_parquet_bomb_is_refused_before_its_rows_are_built(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    path.write_bytes(parquet_bomb(256 << 10, 4096))  # 1 GiB decoded
    assert path.stat().st_size < 1024
    result = read_in_fresh_process(path, FileType.PARQUET, file_max_decoded_bytes=64 * MiB)
    assert "EPOCHSCOPE_DATASET_FILE_MAX_DECODED_BYTES" in result["outcome"], result
    assert "up to row 256 " in result["outcome"]  # 256 rows of 256 KiB and a byte pass 64 MiB
    assert result["grown"] < 40 * MiB, result
    assert result["seconds"] < 5, result


def test_a_parquet_row_over_the_row_budget_names_its_row(tmp_path: Path) -> None:
    messages = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]] * 3
    messages[2] = [{"role": "user", "content": "q" * (2 * MiB)}, {"role": "assistant", "content": "a"}]
    out = io.BytesIO()
    pq.write_table(pa.table({"messages": messages}), out)
    with pytest.raises(OverBudget, match=r"row 3 .*EPOCHSCOPE_DATASET_ROW_MAX_BYTES"):
        list(read_rows(io.BytesIO(out.getvalue()), FileType.PARQUET, DatasetLimits(row_max_bytes=MiB)))


def test_parquet_rows_within_the_budgets_read_as_before() -> None:
    out = io.BytesIO()
    pq.write_table(pa.table({"prompt": ["a", None, "c"], "completion": ["b", "x", "d"]}), out)
    items = list(read_rows(io.BytesIO(out.getvalue()), FileType.PARQUET, DatasetLimits()))
    assert items[0] == Example(0, {"prompt": "a", "completion": "b"})
    assert items[2] == Example(2, {"prompt": "c", "completion": "d"})
    assert not isinstance(items[1], Example)


@pytest.mark.parametrize("file_type", [FileType.JSONL, FileType.CSV])
def test_a_line_as_long_as_the_file_is_refused_without_holding_it(tmp_path: Path, file_type: FileType) -> None:
    long = "a" * (48 * MiB)
    if file_type is FileType.JSONL:
        content = '{"prompt": "q", "completion": "a"}\n{"prompt": "' + long + '", "completion": "a"}\n'
    else:
        content = 'prompt,completion\nq,a\n"' + long + '",a\n'
    path = tmp_path / f"long.{file_type.value}"
    path.write_text(content)
    result = read_in_fresh_process(path, file_type, row_max_bytes=MiB)
    assert result["outcome"].startswith("row 2 decodes to more than 1048576 bytes"), result
    assert "EPOCHSCOPE_DATASET_ROW_MAX_BYTES" in result["outcome"]
    assert result["grown"] < 16 * MiB, result
    assert result["seconds"] < 5, result


def test_a_csv_field_as_long_as_jsonl_accepts_is_read() -> None:
    """csv's own field limit (128 KiB) used to refuse the whole upload; a CSV row now has the JSONL row's budget."""
    field = "f" * (300 << 10)
    rows = list(read_rows(io.BytesIO(f'prompt,completion\n"{field}",a\n'.encode()), FileType.CSV, DatasetLimits()))
    jsonl = json.dumps({"prompt": field, "completion": "a"}).encode()
    assert rows == list(read_rows(io.BytesIO(jsonl), FileType.JSONL, DatasetLimits()))


@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalStore, ApiSettings]:
    settings = ApiSettings(
        job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": str(tmp_path)}
    )
    return LocalStore(str(tmp_path)), settings


def test_a_scan_past_its_memory_limit_is_refused_and_the_caller_lives_on(local: tuple[LocalStore, ApiSettings]) -> None:
    store, settings = local
    obstore.put(store, "big.jsonl", b'{"text": "' + b"t" * (256 * MiB) + b'"}\n')
    settings = settings.model_copy(
        update={"scan_memory_bytes": 64 * MiB, "datasets": DatasetLimits(row_max_bytes=1 << 30)}
    )
    with pytest.raises(UnusableUpload, match="EPOCHSCOPE_SCAN_MEMORY_BYTES"):
        scan_dataset(store, "big.jsonl", FileType.JSONL, {}, settings)
    obstore.put(store, "small.jsonl", b'{"text": "t"}\n')
    assert scan_dataset(store, "small.jsonl", FileType.JSONL, {}, settings).usable_rows == 1


def test_token_counts_fit_the_smallest_scan_memory_limit(local: tuple[LocalStore, ApiSettings]) -> None:
    """The tokenizer's batch encoding runs on a pool of threads: without one malloc arena for all of them, their
    arenas' address space alone passed the limit and every counted upload was refused (compose and Kubernetes set
    256 MiB)."""
    store, settings = local
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer.train_from_iterator(["hello there"], trainer=trainers.BpeTrainer(initial_alphabet=alphabet))
    counters = {"m": TokenCounter(tokenizer, None, {})}
    row = {"prompt": "hello there 123, " * 20, "completion": "hello"}
    obstore.put(store, "rows.jsonl", (json.dumps(row) + "\n").encode() * 5000)
    settings = settings.model_copy(update={"scan_memory_bytes": 64 * MiB})
    scan = scan_dataset(store, "rows.jsonl", FileType.JSONL, counters, settings)
    assert scan.usable_rows == 5000 and scan.report.tokens["m"].max_prompt_tokens > 20


def test_a_scan_child_does_not_import_the_main_scripts_modules_again(tmp_path: Path) -> None:
    """A console script's imports (the API's: the whole app) are imported once, in the forkserver: a child that
    imported them again took 1.4-2.7 s before it scanned anything."""
    (tmp_path / "probe.py").write_text(
        "import os\nIMPORTED_IN = os.getpid()\n\ndef imported_here():\n    return IMPORTED_IN == os.getpid()\n"
    )
    script = tmp_path / "console_script.py"
    script.write_text(
        "from probe import imported_here\n"
        "from epochscope_api.datasets.isolation import run_isolated\n"
        "if __name__ == '__main__':\n"
        "    print([run_isolated(imported_here, (), 64 << 20, 60) for _ in range(2)])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.strip() == "[False, False]", result.stderr


def test_a_scan_childs_collections_leave_out_the_objects_it_was_forked_with() -> None:
    """The scan builds Python objects by the million; its garbage collections walking the forkserver's objects (the
    API's modules) as well cost a third more CPU in an upload of plain chat rows (copied pages)."""
    assert run_isolated(gc.get_freeze_count, (), 64 << 20, 60) > 10_000


def test_a_scan_past_its_timeout_is_refused(local: tuple[LocalStore, ApiSettings]) -> None:
    store, settings = local
    obstore.put(store, "rows.jsonl", b'{"text": "t"}\n' * 200_000)
    started = time.monotonic()
    with pytest.raises(UnusableUpload, match="EPOCHSCOPE_SCAN_TIMEOUT_SECONDS"):
        scan_dataset(store, "rows.jsonl", FileType.JSONL, {}, settings.model_copy(update={"scan_timeout_seconds": 0.2}))
    assert time.monotonic() - started < 5


def test_nested_parquet_rows_read_across_row_groups() -> None:
    """A batch spanning two row groups would be a chunked nested dictionary array, which Arrow cannot build."""
    messages = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(11)]
    out = io.BytesIO()
    pq.write_table(pa.table({"messages": messages}), out, row_group_size=4)
    items = list(read_rows(io.BytesIO(out.getvalue()), FileType.PARQUET, DatasetLimits()))
    assert [item.data["messages"] for item in items] == messages  # type: ignore[union-attr]
