"""The embedded local stack: Postgres, a Kafka-protocol broker, the API, writers and a trainer, on one machine.

Everything listens on loopback only. Secrets are generated once per data folder and kept there, so
tokens minted for one `epochscope up` keep working after a restart.
"""

import asyncio
import json
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.dev_tokens import mint_user_token
from epochscope.model_catalog import with_tokenizers
from epochscope.ports import free_port
from epochscope.postgres import PostgresCluster
from epochscope.processes import ServiceProcess
from epochscope.stack_errors import StackError, require_free_port
from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_runtime.catalog import CatalogModel
from epochscope_runtime.dispatch_keys import load_private_key, new_key_pair, public_key_text

PARTITIONS = 4
TRAINER_IDENTITIES_FILE = "trainer-identities.json"  # in the data folder: one Ed25519 private key per trainer index
API_START_TIMEOUT_S = 60


class LocalStack:
    """Context manager: start everything on enter, stop everything (in reverse order) on exit."""

    def __init__(
        self,
        data_dir: Path,
        api_port: int | None = None,
        writers: int = 1,
        trainers: int = 1,
        extra_env: dict[str, str] | None = None,
        postgres_dir: Path | None = None,
        models: list[CatalogModel] | None = None,
        convert_models: bool = False,
    ) -> None:
        """`models`: the catalog the API offers (default: the demo model). `convert_models`: convert the bundled
        ones into the trainers' model cache while the stack starts, for a job that follows at once (the demo);
        otherwise a trainer converts one on its first job of it."""
        self.data_dir = data_dir.resolve()
        self.logs = self.data_dir / "logs"
        self.api_port = api_port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.writer_count = writers
        self.trainer_count = trainers
        self._extra_env = extra_env or {}
        self._models = models
        self._convert_models = convert_models
        self._secrets = self._load_secrets()
        self.postgres = PostgresCluster.for_stack(self.data_dir, postgres_dir)
        self.broker = TansuBroker(self.logs / "broker.log")
        self.processes: list[ServiceProcess] = []

    @property
    def api_database_url(self) -> str:
        return self.postgres.url_for("epochscope_api", self._secrets["api_db_password"])

    @property
    def writer_database_url(self) -> str:
        return self.postgres.url_for("epochscope_writer", self._secrets["writer_db_password"])

    @property
    def env(self) -> dict[str, str]:
        """The settings every service gets: the same EPOCHSCOPE_* variables a production deployment sets."""
        return {
            "EPOCHSCOPE_ENVIRONMENT": "development",
            "EPOCHSCOPE_JWT_SECRET": self._secrets["jwt_secret"],
            "EPOCHSCOPE_JOB_TOKEN_SECRET": self._secrets["job_token_secret"],
            "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS": self._secrets["dispatch_public_key"],
            "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "EPOCHSCOPE_KAFKA_PARTITIONS": str(PARTITIONS),
            "EPOCHSCOPE_TRAINER_WORK_DIR": str(self.data_dir / "trainer"),
            "EPOCHSCOPE_TRAINER_MODEL_CACHE_DIR": str(self.model_cache),
            "EPOCHSCOPE_STORE_LOCAL_DIR": str(self.object_store_dir),
            "EPOCHSCOPE_PUBLIC_URL": self.api_url,
            **self._extra_env,
        }

    @property
    def model_cache(self) -> Path:
        return self.data_dir / "models"

    @property
    def object_store_dir(self) -> Path:
        """The object store: uploaded datasets (and checkpoints) as files."""
        return self.data_dir / "objects"

    def mint_token(self, user_id: str, ttl: timedelta = timedelta(hours=12)) -> str:
        """A bearer token for `user_id`, signed with this stack's secret (for local development only)."""
        return mint_user_token(self._secrets["jwt_secret"], user_id, ttl)

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every part, or, if one fails, stop those already started and raise (a StackError for
        failures the user can fix; the CLI explains an OSError)."""
        try:
            require_free_port(self.api_port, "the API", "stop what uses it or pass --api-port with a free port")
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        # The catalog's models are prepared (tokenizers extracted, bundled models converted) while the broker and
        # Postgres start and migrate: those wait on their own processes, so the two share the machine.
        converting = self._convert_models and self.trainer_count
        model_cache = Path(self.env["EPOCHSCOPE_TRAINER_MODEL_CACHE_DIR"]) if converting else None
        preparing = in_background(with_tokenizers, self._models, self.data_dir / "tokenizers", model_cache)
        self.broker.start()
        self.postgres.start()
        asyncio.run(self._prepare())
        catalog = preparing.result()
        self.processes.append(
            self._service(
                "api",
                ["epochscope-api"],
                {
                    "EPOCHSCOPE_DATABASE_URL": self.api_database_url,
                    "EPOCHSCOPE_DISPATCH_PRIVATE_KEY": self._secrets["dispatch_private_key"],  # the API's alone
                    "EPOCHSCOPE_API_PORT": str(self.api_port),
                    "EPOCHSCOPE_MODELS": json.dumps([model.model_dump(mode="json") for model in catalog]),
                },
            )
        )
        for index in range(self.trainer_count):  # the writers accept each trainer's key, so made before them
            self._trainer_identity(index)
        for index in range(self.writer_count):
            self.add_writer(index)
        for index in range(self.trainer_count):
            self.add_trainer(index)
        for process in self.processes:
            process.start()
        self._wait_for_api()

    def add_trainer(self, index: int, env: dict[str, str] | None = None, start: bool = False) -> ServiceProcess:
        """Trainer `index`, with its own work folder (the first keeps the single-trainer stack's) and its own identity
        key (writers started before its key was made do not accept it). Each process names itself (its key's
        fingerprint, host, pid, random) in its heartbeats, so a restarted trainer is a new one to the dispatcher."""
        own = {"EPOCHSCOPE_TRAINER_WORK_DIR": str(self.data_dir / f"trainer-{index}")} if index else {}
        own["EPOCHSCOPE_TRAINER_IDENTITY_KEY"] = self._trainer_identity(index)  # this trainer's alone
        trainer = self._service(f"trainer-{index}", ["epochscope-trainer"], {**own, **(env or {})})
        self.processes.append(trainer)
        if start:
            trainer.start()
        return trainer

    def add_writer(self, index: int, start: bool = False) -> ServiceProcess:
        writer = self._service(
            f"writer-{index}",
            ["epochscope-writer"],
            {
                "EPOCHSCOPE_DATABASE_URL": self.writer_database_url,
                "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS": ",".join(self._trainer_public_keys()),
            },
        )
        self.processes.append(writer)
        if start:
            writer.start()
        return writer

    def stop(self) -> None:
        """The services first, all at once (a trainer interrupts its job, left to be re-run), then the broker they
        used, then Postgres: nothing is left talking to a part already gone."""
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            process.wait_stopped()
        self.processes.clear()
        self.broker.stop()
        if self.postgres.started_here and self.postgres.running():
            self.postgres.stop()

    def delete_data(self) -> None:
        """Stop everything and remove this stack's data: the cluster (wherever it lives) and the data folder."""
        self.stop()
        self.postgres.delete()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def service(self, name: str) -> ServiceProcess:
        return next(process for process in self.processes if process.name == name)

    async def _prepare(self) -> None:
        settings = MigrateSettings(
            environment="development",
            admin_database_url=self.postgres.admin_url,
            api_db_password=self._secrets["api_db_password"],
            writer_db_password=self._secrets["writer_db_password"],
        )
        await migrate(settings)
        await ensure_topics(self.broker.bootstrap_servers, PARTITIONS)

    def _service(self, name: str, command: list[str], env: dict[str, str]) -> ServiceProcess:
        return ServiceProcess(name, command, {**self.env, **env}, self.logs / f"{name}.log")

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        api = self.service("api")
        while time.monotonic() < deadline:
            if not api.running():
                raise StackError(f"the API exited during start-up; see {api.log_path}:\n{api.log_tail()}")
            try:
                if httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StackError(f"the API was not ready after {API_START_TIMEOUT_S}s; see {api.log_path}")

    def _trainer_identities(self) -> list[str]:
        path = self.data_dir / TRAINER_IDENTITIES_FILE
        return json.loads(path.read_text()) if path.exists() else []

    def _trainer_identity(self, index: int) -> str:
        """Trainer `index`'s identity private key, made and kept in the data folder on first use."""
        keys = self._trainer_identities()
        if len(keys) <= index:
            keys += [new_key_pair()[0] for _ in range(index + 1 - len(keys))]
            path = self.data_dir / TRAINER_IDENTITIES_FILE
            path.touch(mode=0o600)
            path.write_text(json.dumps(keys, indent=2))
        return keys[index]

    def _trainer_public_keys(self) -> list[str]:
        """The identity public keys of every trainer index made so far: the writers accept these."""
        return [public_key_text(load_private_key(key).public_key()) for key in self._trainer_identities()]

    def _load_secrets(self) -> dict[str, str]:
        """This data folder's secrets; any it lacks (a folder from an older version) are generated and added."""
        path = self.data_dir / "secrets.json"
        kept = json.loads(path.read_text()) if path.exists() else {}
        names = (
            "jwt_secret",
            "job_token_secret",
            "api_db_password",
            "writer_db_password",
        )
        if all(name in kept for name in (*names, "dispatch_private_key", "dispatch_public_key")):
            return kept
        generated = {name: kept.get(name) or secrets.token_urlsafe(32) for name in names}
        pair = ("dispatch_private_key", "dispatch_public_key")  # the dispatcher's Ed25519 pair
        if not all(name in kept for name in pair):
            kept = {**kept, **dict(zip(pair, new_key_pair(), strict=True))}
        generated.update({name: kept[name] for name in pair})
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(generated, indent=2))
        path.chmod(0o600)
        return generated


def in_background(work: Callable[..., Any], *args: Any) -> Future:
    """`work(*args)` on a daemon thread: a start that fails (a Postgres lock, a full disk) reports at once instead of
    waiting out a model conversion of a minute, and the CLI exits without joining the thread."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work(*args))
            except BaseException as exc:  # handed to whoever asks for the result
                future.set_exception(exc)

    threading.Thread(target=run, name="catalog", daemon=True).start()
    return future
