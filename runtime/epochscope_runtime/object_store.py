"""The object store, for datasets now and checkpoints later: a folder locally, any S3-compatible store in production.

Built on obstore (Rust's object_store behind a small Python API): one interface for a local folder and S3, with
streaming multipart uploads, ranged and buffered reads, and no boto3/aiobotocore stack to carry in the API. The
API writes objects; the trainer reads them by the keys the job-start event carries, with its own (read-only where
the store supports it) credentials. Settings: EPOCHSCOPE_STORE_*.
"""

import io
from pathlib import Path
from typing import Any

import obstore
from obstore.store import LocalStore, S3Store
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ObjectStore = LocalStore | S3Store
READ_BUFFER_BYTES = 1 << 20


class StoreSettings(BaseSettings):
    """Where objects live. Give `local_dir` (a folder) or `bucket` (S3 and compatible stores, such as MinIO)."""

    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_STORE_")

    local_dir: Path | None = Field(default=None, description="A folder as the store (the local stack's default).")
    bucket: str | None = Field(default=None, description="S3 bucket.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, for sharing one bucket.")
    endpoint: str | None = Field(default=None, description="S3 endpoint URL, for MinIO and other S3-compatible stores.")
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    allow_http: bool = Field(default=False, description="Allow a plain-http endpoint (a MinIO inside the cluster).")

    @model_validator(mode="after")
    def _one_place(self) -> "StoreSettings":
        if (self.local_dir is None) == (self.bucket is None):
            raise ValueError("set exactly one of EPOCHSCOPE_STORE_LOCAL_DIR and EPOCHSCOPE_STORE_BUCKET")
        return self


def open_store(settings: StoreSettings) -> ObjectStore:
    if settings.local_dir is not None:
        return LocalStore(settings.local_dir.resolve(), mkdir=True)
    options: dict[str, Any] = {"region": settings.region}
    if settings.endpoint:
        options["endpoint"] = settings.endpoint
    if settings.access_key_id and settings.secret_access_key:
        options["access_key_id"] = settings.access_key_id.get_secret_value()
        options["secret_access_key"] = settings.secret_access_key.get_secret_value()
    return S3Store(
        settings.bucket,
        prefix=settings.prefix or None,
        client_options={"allow_http": settings.allow_http},
        **options,
    )


class _ObjectRaw(io.RawIOBase):
    """obstore's buffered reader as a raw stream, so io.BufferedReader, csv and pyarrow can read an object."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._file = obstore.open_reader(store, key, buffer_size=READ_BUFFER_BYTES)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        chunk = self._file.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._file.close()
        super().close()


def open_object(store: ObjectStore, key: str) -> io.BufferedReader:
    """A seekable, buffered binary reader over one object (raises FileNotFoundError if there is none)."""
    return io.BufferedReader(_ObjectRaw(store, key), buffer_size=READ_BUFFER_BYTES)


def download(store: ObjectStore, key: str, target: Path) -> int:
    """Copy one object to a local file, streamed; the bytes written."""
    written = 0
    with target.open("wb") as out:
        for chunk in obstore.get(store, key).stream(min_chunk_size=READ_BUFFER_BYTES):
            written += out.write(chunk)
    return written
