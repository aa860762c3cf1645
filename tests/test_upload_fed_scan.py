"""A JSONL upload is scanned while its body arrives (scan.py's Scanner.while_stored): its child reads the bytes from
a pipe as they are stored. Its report and row index must be what the scan of the stored object gives, and it keeps
that scan's budgets, memory limit, timeout and messages, whether the child reads to the end or stops early."""

import json
import multiprocessing
import time
from pathlib import Path
from typing import IO

import obstore
import pytest
from obstore.store import LocalStore

from epochscope_api.datasets.isolation import FedRun
from epochscope_api.datasets.row_index import index_key
from epochscope_api.datasets.scan import FedScan, Scan, Scanner, scan_dataset
from epochscope_api.errors import UnusableUpload
from epochscope_api.settings import ApiSettings
from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import FileType

MiB = 1 << 20


@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalStore, ApiSettings]:
    settings = ApiSettings(
        job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": str(tmp_path)}
    )
    return LocalStore(str(tmp_path)), settings


def chat_row(i: int) -> bytes:
    messages = [{"role": "user", "content": f"question {i} é"}, {"role": "assistant", "content": f"answer {i}"}]
    return json.dumps({"messages": messages}).encode()


def a_file() -> bytes:
    """Blocks of plain chat rows (the compiled path) with malformed and other-format lines between them."""
    lines = [chat_row(i) for i in range(30_000)]
    lines[5] = b"not json"
    lines[20_000] = b'{"messages": [{"role": "robot", "content": "x"}]}'
    lines[25_000] = b'{"prompt": "p", "completion": "c"}'
    return b"\n".join(lines) + b"\n"


async def fed(scan: FedScan | None, content: bytes, chunk: int) -> Scan:
    assert scan is not None
    for start in range(0, len(content), chunk):
        await scan.write(content[start : start + chunk])
    return await scan.result()


@pytest.mark.parametrize("chunk", [65_536, 1_000_003])
async def test_a_scan_fed_while_stored_reports_and_indexes_what_the_stored_scan_does(
    local: tuple[LocalStore, ApiSettings], chunk: int
) -> None:
    store, settings = local
    content = a_file()
    obstore.put(store, "stored.jsonl", content)
    expected = scan_dataset(store, "stored.jsonl", FileType.JSONL, {}, settings)
    scan = await fed(Scanner(store, {}, settings).while_stored("fed.jsonl", FileType.JSONL), content, chunk)
    assert scan == expected
    assert (scan.rows, scan.usable_rows, scan.report.malformed) == (30_000, 29_997, 3)
    fed_index = bytes(obstore.get(store, index_key("fed.jsonl")).bytes())
    assert fed_index == bytes(obstore.get(store, index_key("stored.jsonl")).bytes())


def test_only_jsonl_is_scanned_while_stored(local: tuple[LocalStore, ApiSettings]) -> None:
    """A CSV's records are read twice and a Parquet file from its end: both are scanned once stored."""
    store, settings = local
    scanner = Scanner(store, {}, settings)
    assert scanner.while_stored("a.csv", FileType.CSV) is None
    assert scanner.while_stored("a.parquet", FileType.PARQUET) is None


async def test_a_fed_scan_that_stops_reading_early_refuses_with_the_readers_message(
    local: tuple[LocalStore, ApiSettings],
) -> None:
    """The child refuses the file past its decoded budget long before the body ends: the rest of the body still
    goes in without an error or a wait, and the refusal is the stored scan's."""
    store, settings = local
    settings = settings.model_copy(update={"datasets": DatasetLimits(file_max_decoded_bytes=MiB)})
    content = a_file() * 4
    obstore.put(store, "stored.jsonl", content)
    with pytest.raises(UnusableUpload) as stored_refusal:
        scan_dataset(store, "stored.jsonl", FileType.JSONL, {}, settings)
    started = time.monotonic()
    with pytest.raises(UnusableUpload) as fed_refusal:
        await fed(Scanner(store, {}, settings).while_stored("fed.jsonl", FileType.JSONL), content, 65_536)
    assert str(fed_refusal.value) == str(stored_refusal.value)
    assert "EPOCHSCOPE_DATASET_FILE_MAX_DECODED_BYTES" in str(fed_refusal.value)
    assert time.monotonic() - started < 30


async def test_a_fed_scan_past_its_memory_limit_is_refused(local: tuple[LocalStore, ApiSettings]) -> None:
    store, settings = local
    settings = settings.model_copy(
        update={"scan_memory_bytes": 64 * MiB, "datasets": DatasetLimits(row_max_bytes=1 << 30)}
    )
    content = b'{"text": "' + b"t" * (256 * MiB) + b'"}\n'
    with pytest.raises(UnusableUpload, match="EPOCHSCOPE_SCAN_MEMORY_BYTES"):
        await fed(Scanner(store, {}, settings).while_stored("big.jsonl", FileType.JSONL), content, 4 * MiB)


async def test_a_fed_scan_that_keeps_the_upload_waiting_past_its_timeout_is_refused(
    local: tuple[LocalStore, ApiSettings],
) -> None:
    """The timeout bounds how long the upload waits on its scan: here the rows arrive far faster than the child
    reads them (line by line, some seconds' work), and the writes stop waiting once it has passed."""
    store, settings = local
    settings = settings.model_copy(update={"scan_timeout_seconds": 0.2})
    content = b'{"text": "t"}\n' * 4_000_000
    scan = Scanner(store, {}, settings).while_stored("rows.jsonl", FileType.JSONL)
    assert scan is not None
    started = time.monotonic()
    for start in range(0, len(content), 65_536):
        await scan.write(content[start : start + 65_536])
    written_after = time.monotonic() - started
    with pytest.raises(UnusableUpload, match="EPOCHSCOPE_SCAN_TIMEOUT_SECONDS"):
        await scan.result()
    assert written_after < 2


async def test_a_cancelled_fed_scan_leaves_no_child_and_writes_no_index(local: tuple[LocalStore, ApiSettings]) -> None:
    store, settings = local
    scan = Scanner(store, {}, settings).while_stored("gone.jsonl", FileType.JSONL)
    assert scan is not None
    await scan.write(a_file()[: 2 * MiB])
    assert multiprocessing.active_children()
    scan.cancel()
    assert not multiprocessing.active_children()
    with pytest.raises(FileNotFoundError):
        obstore.get(store, index_key("gone.jsonl"))


def read_after_a_while(file: IO[bytes], seconds: float) -> int:
    time.sleep(seconds)
    return len(file.read())


async def test_the_body_goes_on_arriving_while_the_child_is_busy() -> None:
    """The child reads its pipe ahead of the scan (up to 8 MiB): the upload does not wait on a child busy with a
    block for more than the pipe holds (1 MiB)."""
    run = FedRun(read_after_a_while, (3.0,), 256 * MiB, 60)
    started = time.monotonic()
    for _ in range(6):
        await run.write(b"x" * MiB)
    written_after = time.monotonic() - started
    assert await run.result() == 6 * MiB
    assert written_after < 2.0
