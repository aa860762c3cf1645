"""The object store, both backends: a local folder, and S3 against a real S3-protocol server (moto's standalone
server, started here on a free port; no network, no Docker)."""

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import obstore
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from epochscope.ports import free_port
from epochscope_runtime.object_store import ObjectStore, StoreSettings, download, open_object, open_store

BUCKET = "epochscope-test"
SECRET = "moto-secret-key-never-shown"
MULTIPART_BYTES = 12 * 1024 * 1024  # above obstore's 10 MB single-request limit: a real multipart upload
PART_BYTES = 5 * 1024 * 1024  # S3's smallest part


@pytest.fixture(scope="module")
def s3_settings() -> Iterator[StoreSettings]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert httpx.put(f"{endpoint}/{BUCKET}", timeout=10).status_code == 200  # CreateBucket
        yield StoreSettings(
            bucket=BUCKET,
            endpoint=endpoint,
            allow_http=True,
            access_key_id="moto-access-key",
            secret_access_key=SECRET,
            prefix="tenant-a",
        )
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(StoreSettings(local_dir=tmp_path / "store"))
    return open_store(request.getfixturevalue("s3_settings"))


def test_put_then_seek_and_read_lines(store: ObjectStore) -> None:
    lines = [f'{{"text": "line {i}"}}\n'.encode() for i in range(1000)]
    obstore.put(store, "datasets/lines.jsonl", b"".join(lines))
    with open_object(store, "datasets/lines.jsonl") as reader:
        assert reader.readline() == lines[0]
        reader.seek(sum(map(len, lines[:500])))
        assert reader.readline() == lines[500]
        assert list(reader) == lines[501:]
        reader.seek(-len(lines[-1]), io.SEEK_END)
        assert reader.read() == lines[-1]


def test_pyarrow_reads_a_parquet_object(store: ObjectStore) -> None:
    table = pa.Table.from_pylist([{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(5000)])
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=1000)
    obstore.put(store, "datasets/rows.parquet", buffer.getvalue())
    with open_object(store, "datasets/rows.parquet") as reader:
        parquet = pq.ParquetFile(reader)
        assert parquet.metadata.num_row_groups == 5
        assert parquet.read_row_group(3).to_pylist()[0] == {"prompt": "q3000", "completion": "a3000"}
        assert parquet.read().equals(table)


def test_a_multipart_upload_downloads_whole(store: ObjectStore, tmp_path: Path) -> None:
    block = hashlib.sha256(b"epochscope").digest() * 2048  # 64 KiB, not all one byte
    data = block * (MULTIPART_BYTES // len(block))
    chunks = (data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024))
    obstore.put(store, "datasets/big.jsonl", chunks, use_multipart=True, chunk_size=PART_BYTES)
    assert obstore.head(store, "datasets/big.jsonl")["size"] == MULTIPART_BYTES
    target = tmp_path / "big.jsonl"
    assert download(store, "datasets/big.jsonl", target) == MULTIPART_BYTES
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_delete_and_missing_keys(store: ObjectStore, tmp_path: Path) -> None:
    obstore.put(store, "datasets/gone.csv", b"text\nhello\n")
    obstore.delete(store, "datasets/gone.csv")
    with pytest.raises(FileNotFoundError):
        open_object(store, "datasets/gone.csv")
    with pytest.raises(FileNotFoundError):
        download(store, "datasets/never-was.csv", tmp_path / "never-was.csv")


def test_the_s3_prefix_keeps_keys_inside_it(s3_settings: StoreSettings) -> None:
    obstore.put(open_store(s3_settings), "datasets/a.jsonl", b"{}\n")
    whole_bucket = open_store(s3_settings.model_copy(update={"prefix": ""}))
    assert obstore.get(whole_bucket, "tenant-a/datasets/a.jsonl").bytes().to_bytes() == b"{}\n"


def test_settings_need_exactly_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCAL_DIR", "BUCKET"):
        monkeypatch.delenv(f"EPOCHSCOPE_STORE_{name}", raising=False)
    with pytest.raises(ValidationError, match="exactly one of EPOCHSCOPE_STORE_LOCAL_DIR and EPOCHSCOPE_STORE_BUCKET"):
        StoreSettings()
    with pytest.raises(ValidationError, match="set exactly one"):
        StoreSettings(local_dir=tmp_path, bucket="b")
    monkeypatch.setenv("EPOCHSCOPE_STORE_BUCKET", "from-env")
    assert StoreSettings().bucket == "from-env"


def test_the_settings_never_show_the_secret(s3_settings: StoreSettings) -> None:
    for shown in (repr(s3_settings), str(s3_settings), str(s3_settings.model_dump())):
        assert SECRET not in shown
