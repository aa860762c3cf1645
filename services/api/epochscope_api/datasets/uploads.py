"""A dataset upload, streamed: the multipart body is parsed as it arrives (python-multipart's push parser) and the
`file` part goes straight into the object store (a multipart upload), hashed and counted on the way, and where
the scan can read it as it comes (a JSONL file), into the scan's child process too, so that the scan runs while the
body arrives. Neither the API's memory nor its disk ever holds the whole file; past the size limit it stops at once
and keeps nothing.
"""

import hashlib
import logging
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import obstore
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from epochscope_api.errors import DomainError, UnusableUpload, UploadTooLarge
from epochscope_runtime.dataset_rows import FileType, file_type_of
from epochscope_runtime.object_store import ObjectStore

log = logging.getLogger("epochscope.api.uploads")

FIELD = "file"
MULTIPART_OVERHEAD = 64 << 10  # boundaries and part headers around the file, allowed on top of the limit
DRAIN_MAX_BYTES = 8 << 20  # read (and drop) at most this much of a refused body, so the client gets the answer
FILENAME_MAX_CHARS = 200
WRITE_BUFFER_BYTES = 5 << 20  # S3's smallest multipart part


class BodyScan(Protocol):
    """A scan fed the file's bytes while they are stored (scan.py's FedScan)."""

    async def write(self, data: bytes) -> None: ...

    async def result(self) -> Any: ...

    def cancel(self) -> None: ...


ScanWhileStored = Callable[[str, FileType], BodyScan | None]  # the key and type -> a scan fed as it is stored, or None


@dataclass(frozen=True)
class StoredUpload:
    """A stored file; `scan` the scan that read it as it arrived (its result still to take), None if none did."""

    filename: str
    file_type: FileType
    object_key: str
    bytes: int
    sha256: str
    scan: BodyScan | None = None


def object_key(user_id: str, dataset_id: uuid.UUID, file_type: FileType) -> str:
    """Where a dataset's file lives: under a digest of its owner (no user id in keys or logs) and its id."""
    owner = hashlib.sha256(user_id.encode()).hexdigest()[:16]
    return f"datasets/{owner}/{dataset_id}.{file_type.value}"


def clean_filename(raw: str) -> str:
    """The name as shown back: no folders, no control characters, at most FILENAME_MAX_CHARS (suffix kept)."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > FILENAME_MAX_CHARS:
        stem, dot, suffix = name.rpartition(".")
        keep = FILENAME_MAX_CHARS - len(suffix) - 1
        name = f"{stem[:keep]}.{suffix}" if dot and keep > 0 else name[:FILENAME_MAX_CHARS]
    return name


@dataclass
class _Events:
    """What the push parser reported during one write(): its callbacks are synchronous, the store writes are not."""

    items: list[tuple[str, Any]] = field(default_factory=list)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _name: bytes = b""
    _value: bytes = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add("_name", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.items.append(("headers", dict(self._headers))),
            "on_part_data": lambda data, start, end: self.items.append(("data", bytes(data[start:end]))),
            "on_part_end": lambda: self.items.append(("end", None)),
        }

    def _begin(self) -> None:
        self._headers = {}

    def _add(self, attribute: str, piece: bytes) -> None:
        setattr(self, attribute, getattr(self, attribute) + piece)

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def take(self) -> list[tuple[str, Any]]:
        items, self.items = self.items, []
        return items


def _boundary(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise UnusableUpload("send the dataset as multipart/form-data with one file part named file")
    return options[b"boundary"]


def _file_part(headers: dict[bytes, bytes]) -> tuple[str, FileType] | None:
    """(filename, type) if these are the headers of the `file` part; None for another part."""
    _, options = parse_options_header(headers.get(b"content-disposition", b""))
    if options.get(b"name") != FIELD.encode():
        return None
    filename = clean_filename(options.get(b"filename", b"").decode("utf-8", "replace"))
    if not filename:
        raise UnusableUpload("the part has no filename; its suffix gives the type (.jsonl, .ndjson, .csv, .parquet)")
    file_type = file_type_of(filename)
    if file_type is None:
        raise UnusableUpload(f"{filename!r}: the name must end in .jsonl, .ndjson, .csv or .parquet")
    return filename, file_type


async def _drain(stream: AsyncIterator[bytes]) -> None:
    """Read what is left of a refused body, up to DRAIN_MAX_BYTES, so the client reads our answer, not a reset."""
    drained = 0
    async for chunk in stream:
        drained += len(chunk)
        if drained > DRAIN_MAX_BYTES:
            return


async def drain_body(request: Request) -> None:
    """Read (and drop) what a refused upload sends, up to DRAIN_MAX_BYTES, before answering."""
    await _drain(request.stream())


async def delete_quietly(store: ObjectStore, *keys: str) -> None:
    for key in keys:
        try:
            await obstore.delete_async(store, key)
        except FileNotFoundError:
            pass
        except Exception:
            log.exception("could not delete %s from the store", key)


async def _abandon(store: ObjectStore, key: str | None, scan: BodyScan | None) -> None:
    if scan is not None:
        scan.cancel()
    if key:
        await delete_quietly(store, key)


async def receive_upload(
    request: Request,
    store: ObjectStore,
    user_id: str,
    dataset_id: uuid.UUID,
    limit: int,
    too_large: Callable[[], DomainError] | None = None,
    scan_while_stored: ScanWhileStored | None = None,
) -> StoredUpload:
    """The request's `file` part, stored under object_key(), and fed to scan_while_stored's scan where it gives one;
    nothing stays stored (nor runs) if anything goes wrong. Past `limit` bytes, too_large() is raised (UploadTooLarge
    by default; a quota error where the user's quota binds)."""
    over_limit = too_large or (lambda: UploadTooLarge(limit))
    stream = request.stream()
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        await _drain(stream)
        raise over_limit()
    events = _Events()
    parser = MultipartParser(_boundary(request.headers.get("content-type")), events.callbacks())
    key = writer = part = scan = None
    hasher, size, body, done = hashlib.sha256(), 0, 0, False
    try:
        async for chunk in stream:
            body += len(chunk)
            if body > limit + MULTIPART_OVERHEAD:
                raise over_limit()
            parser.write(chunk)
            for kind, payload in events.take():
                if kind == "headers" and writer is None and not done and (found := _file_part(payload)):
                    part = found
                    key = object_key(user_id, dataset_id, part[1])
                    writer = obstore.open_writer_async(store, key, buffer_size=WRITE_BUFFER_BYTES, max_concurrency=4)
                    scan = scan_while_stored(key, part[1]) if scan_while_stored else None
                elif kind == "data" and writer is not None and not done:
                    size += len(payload)
                    if size > limit:
                        raise over_limit()
                    hasher.update(payload)
                    if scan is not None:
                        await scan.write(payload)
                    await writer.write(payload)
                elif kind == "end" and writer is not None:
                    done = True
        parser.finalize()
        if part is None or writer is None or not done:
            raise UnusableUpload("missing: send the dataset as a multipart part named file")
        await writer.close()
    except FormParserError as exc:
        writer = None  # dropping an unclosed writer aborts its multipart upload
        await _abandon(store, key, scan)
        raise UnusableUpload(f"not a valid multipart body ({exc})") from exc
    except DomainError:
        writer = None
        await _abandon(store, key, scan)
        await _drain(stream)
        raise
    except BaseException:  # the client went away, the store failed
        writer = None
        await _abandon(store, key, scan)
        raise
    return StoredUpload(part[0], part[1], key, size, hasher.hexdigest(), scan)


@dataclass(frozen=True)
class RequestUpload:
    """The upload request's body as service_layer/datasets.py's UploadBody: stored into the user's key, or drained."""

    request: Request
    store_: ObjectStore
    user_id: str
    scan_while_stored: ScanWhileStored | None = None

    async def store(
        self, dataset_id: uuid.UUID, limit: int, too_large: Callable[[], DomainError] | None
    ) -> StoredUpload:
        return await receive_upload(
            self.request, self.store_, self.user_id, dataset_id, limit, too_large, self.scan_while_stored
        )

    async def discard(self) -> None:
        await drain_body(self.request)


@dataclass(frozen=True)
class BuiltUpload:
    """A file the API built (preference pairs, JSONL) as service_layer/datasets.py's UploadBody: stored under the
    user's key as an upload is, then scanned and reported as one."""

    store_: ObjectStore
    user_id: str
    filename: str
    content: bytes

    async def store(
        self, dataset_id: uuid.UUID, limit: int, too_large: Callable[[], DomainError] | None
    ) -> StoredUpload:
        if len(self.content) > limit:
            raise (too_large or (lambda: UploadTooLarge(limit)))()
        key = object_key(self.user_id, dataset_id, FileType.JSONL)
        await obstore.put_async(self.store_, key, self.content)
        sha256 = hashlib.sha256(self.content).hexdigest()
        return StoredUpload(self.filename, FileType.JSONL, key, len(self.content), sha256)

    async def discard(self) -> None:
        """Nothing arrived over the network: nothing to drain."""
