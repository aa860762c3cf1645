"""Shared by the deployment tests (tests/test_deploy_*.py): where the deploy files are, which settings each
process reads, which packages each image installs, and small readers for env files and settings."""

import os
import re
import secrets
import stat
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from epochscope_api.settings import ApiSettings
from epochscope_db.migrate import MigrateSettings
from epochscope_runtime.dispatch_keys import new_key_pair
from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.topics import (
    TRAINING_PREDICTIONS,
    TRAINING_STATUS,
)
from epochscope_trainer.settings import TrainerSettings
from epochscope_writer.settings import WriterSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
TOPICS_SCRIPT = DEPLOY / "kafka" / "create-topics.sh"
ENV_NAME = re.compile(r"\bEPOCHSCOPE_[A-Z0-9_]+\b")
KEY_PAIRS = {  # the Ed25519 pairs an operator makes: private and public halves, matching
    **dict(zip(("EPOCHSCOPE_DISPATCH_PRIVATE_KEY", "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS"), new_key_pair(), strict=True)),
    **dict(zip(("EPOCHSCOPE_TRAINER_IDENTITY_KEY", "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS"), new_key_pair(), strict=True)),
}


def filled_secret(name: str) -> str:
    """A value for a secret an operator fills in: a key of the dispatcher's or the trainer's pair, else random."""
    return KEY_PAIRS.get(name) or secrets.token_hex(24)


PACKAGE_DIRS = {
    "schemas": ROOT / "schemas",
    "runtime": ROOT / "runtime",
    "db": ROOT / "db",
    "api": ROOT / "services/api",
    "writer": ROOT / "services/writer",
    "trainer": ROOT / "services/trainer",
}
# The packages each service image installs: the API image also carries the migrator (epochscope-db).
IMAGE_PACKAGES = {
    "api": ("schemas", "runtime", "db", "api"),
    "writer": ("schemas", "runtime", "writer"),
    "trainer": ("schemas", "runtime", "trainer"),
}
WRITER_TOPICS = (TRAINING_PREDICTIONS, TRAINING_STATUS)  # what the writers consume (docs/architecture.md)

# Which settings classes each deployed process reads.
COMPOSE_SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "migrate": MigrateSettings,
    "writer": WriterSettings,
    "trainer": TrainerSettings,
    "trainer-cpu": TrainerSettings,
    "topic-init": KafkaSettings,
}
K8S_SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "writer": WriterSettings,
    "trainer": TrainerSettings,
    "epochscope-migrate": MigrateSettings,
    "epochscope-topics": KafkaSettings,
}


# ---------------------------------------------------------------------------------------------- helpers


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads, nested settings (read by their own prefix) included."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in cls.model_fields.items():  # a field with its own name reads that name instead
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{field_name}".upper())
        for nested in (field.annotation, *typing.get_args(field.annotation)):  # `Settings | None` too
            if isinstance(nested, type) and issubclass(nested, BaseSettings):
                names |= env_names(nested)
    return names


def required_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name, field in cls.model_fields.items() if field.is_required()}


KNOWN_NAMES = set().union(*(env_names(cls) for cls in {*COMPOSE_SETTINGS.values(), *K8S_SETTINGS.values()}))


def load_settings(cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    """Instantiate a settings class from exactly `env` (plus nothing EPOCHSCOPE_* from this process)."""
    with monkeypatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("EPOCHSCOPE_"):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return cls()


def pyproject(package: str) -> dict[str, Any]:
    return tomllib.loads((PACKAGE_DIRS[package] / "pyproject.toml").read_text())


def console_scripts(package: str) -> set[str]:
    return set(pyproject(package)["project"].get("scripts", {}))


def image_scripts(image: str) -> set[str]:
    """The console scripts of every package the image installs."""
    return set().union(*(console_scripts(package) for package in IMAGE_PACKAGES[image]))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and ${VAR?error}."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        present, value = name in env, env.get(name, "")
        if op.startswith(":") and not value:
            present = False
        if present:
            return value
        if op.endswith("?"):
            raise KeyError(f"${{{name}}} is required: {arg}")
        return arg if op.endswith("-") else ""

    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}", substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
