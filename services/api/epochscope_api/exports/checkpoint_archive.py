"""A checkpoint's files as a tar stream: each file's header, then its bytes as the store streams them."""

import tarfile
import time
from collections.abc import AsyncIterator
from typing import Any

import obstore

from epochscope_api.data.checkpoints import StoredCheckpoint
from epochscope_api.errors import CheckpointNotFound
from epochscope_runtime.object_store import READ_BUFFER_BYTES, ObjectStore

BLOCK = 512


def archive_bytes(files: list[dict[str, Any]]) -> int:
    """The tar's exact size: a header block and the padded data per file, then two zero blocks."""
    return sum(BLOCK + -(-f["bytes"] // BLOCK) * BLOCK for f in files) + 2 * BLOCK


async def check_objects(store: ObjectStore, stored: StoredCheckpoint) -> None:
    """CheckpointNotFound unless every file is in the store with its recorded size."""
    for f in stored.files:
        try:
            meta = await obstore.head_async(store, f"{stored.key}/{f['name']}")
        except FileNotFoundError:
            raise CheckpointNotFound from None
        if meta["size"] != f["bytes"]:
            raise CheckpointNotFound


async def tar_stream(store: ObjectStore, stored: StoredCheckpoint, folder: str) -> AsyncIterator[bytes]:
    """USTAR entries `<folder>/<file>`, streamed object by object, chunk by chunk."""
    now = int(time.time())
    for f in stored.files:
        info = tarfile.TarInfo(f"{folder}/{f['name']}")
        info.size, info.mode, info.mtime = f["bytes"], 0o644, now
        yield info.tobuf(format=tarfile.USTAR_FORMAT)
        sent = 0
        result = await obstore.get_async(store, f"{stored.key}/{f['name']}")
        async for chunk in result.stream(min_chunk_size=READ_BUFFER_BYTES):
            sent += len(chunk)
            yield bytes(chunk)
        if sent != f["bytes"]:
            raise OSError(f"{f['name']}: the store returned {sent} bytes, {f['bytes']} expected")
        if sent % BLOCK:
            yield bytes(BLOCK - sent % BLOCK)
    yield bytes(2 * BLOCK)
