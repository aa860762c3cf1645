"""The production deployment, checked without a Docker engine or a cluster.

- docker-compose.yml against the Compose Specification's JSON Schema (the copy check-jsonschema ships),
  then its shape: start order, healthchecks, scalable writers, the GPU trainer and its CPU profile;
- every EPOCHSCOPE_* name in docker-compose.yml, the Dockerfiles and the Kubernetes manifests is one a
  settings class really reads (names derived from the classes), and each service's values parse;
- deploy/compose.sh and deploy/kafka/create-topics.sh run against stand-ins for docker and kafka-topics.sh;
- each Dockerfile builds and installs exactly its service's package; the api and writer wheels install
  into a fresh virtualenv without torch and import;
- the Kubernetes manifests: kinds, fields, cross-references, probes, autoscaling, and the Kubernetes
  OpenAPI schemas (kubernetes-validate) where installed.
"""

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
import venv
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from pydantic_settings import BaseSettings

from epochscope_api.settings import ApiSettings
from epochscope_db.migrate import MigrateSettings
from epochscope_schemas.kafka import KafkaSettings
from epochscope_schemas.topics import (
    ALL_TOPICS,
    TRAINING_PREDICTIONS,
    TRAINING_STATUS,
    WRITERS_GROUP,
    dead_letter_topic,
)
from epochscope_trainer.settings import TrainerSettings
from epochscope_writer.settings import WriterSettings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
TOPICS_SCRIPT = DEPLOY / "kafka" / "create-topics.sh"
ENV_NAME = re.compile(r"\bEPOCHSCOPE_[A-Z0-9_]+\b")

PACKAGE_DIRS = {
    "schemas": ROOT / "schemas",
    "db": ROOT / "db",
    "api": ROOT / "services/api",
    "writer": ROOT / "services/writer",
    "trainer": ROOT / "services/trainer",
}
# The packages each service image installs: the API image also carries the migrator (epochscope-db).
IMAGE_PACKAGES = {"api": ("schemas", "db", "api"), "writer": ("schemas", "writer"), "trainer": ("schemas", "trainer")}
WRITER_TOPICS = (TRAINING_PREDICTIONS, TRAINING_STATUS)  # what the writers consume (ARCHITECTURE.md)

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
    for field_name, field in cls.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= env_names(field.annotation)
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


# --------------------------------------------------------------------------------------- docker compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    try:
        vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.fail("the Compose Specification schema comes from check-jsonschema: pip install check-jsonschema")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def compose_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert compose_schema["title"] == "Compose Specification"
    assert compose_errors(compose_schema, compose) == []
    # The validation is live: a wrong condition or an unknown key is refused.
    broken = json.loads(json.dumps(compose))
    broken["services"]["writer"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert len(compose_errors(compose_schema, broken)) >= 2


def test_compose_runs_kafka_in_kraft_mode_and_postgres_on_named_volumes(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], compose["volumes"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka["environment"]
    assert not any("ZOOKEEPER" in name for name in kafka["environment"])
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert services["postgres"]["image"].startswith("postgres:")
    for name, target in (("kafka", "/var/lib/kafka/data"), ("postgres", "/var/lib/postgresql/data")):
        sources = {mount.split(":")[0] for mount in services[name]["volumes"] if mount.split(":")[1] == target}
        assert sources and sources <= set(volumes), f"{name}'s data is not on a named volume"
    # Every volume that is not a host path is declared at the top level.
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undeclared volume {source}"


def test_compose_start_order_uses_healthchecks_and_one_shot_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "postgres", "api", "writer"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for one_shot in ("migrate", "topic-init"):
        assert services[one_shot]["restart"] == "no"
    assert services["migrate"]["command"] == ["epochscope-migrate"]
    assert "epochscope-migrate" in console_scripts("db") and "epochscope-migrate" in image_scripts("api")
    for name in ("api", "writer"):
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "kafka": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
            "topic-init": {"condition": "service_completed_successfully"},
        }
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}, which has none"
            else:
                assert services[dependency].get("restart") == "no", f"{dependency} is not a one-shot service"


def test_compose_probes_the_ports_the_services_listen_on(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api_port = services["api"]["environment"]["EPOCHSCOPE_API_PORT"]
    writer_port = services["writer"]["environment"]["EPOCHSCOPE_WRITER_HEALTH_PORT"]
    assert f"127.0.0.1:{api_port}/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert f"127.0.0.1:{writer_port}/readyz" in " ".join(services["writer"]["healthcheck"]["test"])
    assert any(port.endswith(f":{api_port}") for port in services["api"]["ports"])


def test_compose_writers_scale_out(compose: dict[str, Any]) -> None:
    writer = compose["services"]["writer"]
    assert int(writer["deploy"]["replicas"]) >= 2
    assert "container_name" not in writer and "ports" not in writer, "a fixed name or host port stops --scale"


def test_compose_trainer_reserves_a_gpu_and_has_a_cpu_profile(compose: dict[str, Any]) -> None:
    gpu, cpu = compose["services"]["trainer"], compose["services"]["trainer-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] and device.get("driver") == "nvidia" for device in devices)
    assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu
    assert cpu["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert gpu["build"]["args"]["TORCH_VARIANT"] != "cpu"
    for trainer in (gpu, cpu):
        assert trainer["build"]["dockerfile"] == "deploy/trainer.Dockerfile"
        assert not any(name.endswith("DATABASE_URL") for name in trainer["environment"]), "no DB credentials"


def test_compose_builds_each_service_from_its_dockerfile(compose: dict[str, Any]) -> None:
    expected = {"api": "api", "migrate": "api", "writer": "writer", "trainer": "trainer", "trainer-cpu": "trainer"}
    for name, package in expected.items():
        build = compose["services"][name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"deploy/{package}.Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()


def test_compose_settings_are_names_the_services_read(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        used = {key for key in service.get("environment", {}) if key.startswith("EPOCHSCOPE_")}
        if name in COMPOSE_SETTINGS:
            unknown = used - env_names(COMPOSE_SETTINGS[name])
            assert not unknown, f"{name} sets {sorted(unknown)}, which its settings do not read"
            missing = required_env_names(COMPOSE_SETTINGS[name]) - used
            assert not missing, f"{name} lacks required settings {sorted(missing)}"
        else:
            assert not used, f"{name} is not an Epochscope service but sets {sorted(used)}"


def test_every_epochscope_name_in_deploy_files_is_a_real_setting() -> None:
    files = [COMPOSE_FILE, *DEPLOY.rglob("*")]
    for path in files:
        if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".sh", ".example", ".Dockerfile", ".md"):
            names = {name for name in ENV_NAME.findall(path.read_text()) if not name.endswith("_")}  # not prefixes
            unknown = names - KNOWN_NAMES
            assert not unknown, f"{path.relative_to(ROOT)} names settings nobody reads: {sorted(unknown)}"


def compose_env_for_tests(defaults_only: bool = False) -> dict[str, str]:
    """deploy/compose.env.example with its blank secrets filled, as deploy/compose.sh does; or the secrets alone."""
    env = read_env_file(DEPLOY / "compose.env.example")
    if defaults_only:
        return {name: f"{name.lower()}-value" for name, value in env.items() if not value}
    return {name: value or f"{name.lower()}-value" for name, value in env.items()}


@pytest.mark.parametrize("defaults_only", [False, True], ids=["example-env", "compose-defaults"])
def test_compose_values_parse_into_each_services_settings(
    compose: dict[str, Any], defaults_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = compose_env_for_tests(defaults_only)
    loaded = {}
    for name, cls in COMPOSE_SETTINGS.items():
        environment = compose["services"][name]["environment"]
        resolved = {  # a key without a value passes the shell's value on, or nothing
            key: interpolate(str(value), shell) if value is not None else shell[key]
            for key, value in environment.items()
            if key.startswith("EPOCHSCOPE_") and (value is not None or key in shell)
        }
        loaded[name] = settings = load_settings(cls, resolved, monkeypatch)
        kafka = settings if isinstance(settings, KafkaSettings) else getattr(settings, "kafka", None)
        if kafka is not None:
            assert kafka.bootstrap_servers == "kafka:9092" and kafka.sasl_mechanism is None
            assert kafka.partitions == int(shell.get("EPOCHSCOPE_KAFKA_PARTITIONS", 6))
    for role in ("api", "writer"):
        url = loaded[role].database_url
        assert url.startswith(f"postgresql://epochscope_{role}:") and url.endswith("@postgres:5432/epochscope")
    assert loaded["api"].api_host == "0.0.0.0"
    assert loaded["migrate"].admin_database_url.startswith("postgresql://postgres:")


def test_compose_script_writes_secrets_once_and_picks_the_trainer_profile(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "docker-calls"
    write_executable(bin_dir / "docker", f'#!/bin/sh\necho "COMPOSE_PROFILES=$COMPOSE_PROFILES $*" >> {calls}\n')
    write_executable(bin_dir / "nvidia-smi", "#!/bin/sh\nexit 1\n")
    env_file = tmp_path / "compose.env"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ENV_FILE": str(env_file), "HOME": str(tmp_path)}
    script = DEPLOY / "compose.sh"

    subprocess.run([str(script)], env=env, check=True, capture_output=True, timeout=30)
    first = read_env_file(env_file)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    secrets = [
        first[name]
        for name in (
            "POSTGRES_PASSWORD",
            "EPOCHSCOPE_API_DB_PASSWORD",
            "EPOCHSCOPE_WRITER_DB_PASSWORD",
            "EPOCHSCOPE_JWT_SECRET",
            "EPOCHSCOPE_JOB_TOKEN_SECRET",
        )
    ]
    assert all(re.fullmatch(r"[0-9a-f]{48}", secret) for secret in secrets) and len(set(secrets)) == len(secrets)
    assert re.fullmatch(r"[0-9a-f]{22}", first["KAFKA_CLUSTER_ID"])
    # Every variable the compose file requires is in the generated file.
    required = set(re.findall(r"\$\{(\w+):?\?", COMPOSE_FILE.read_text()))
    assert required and all(first.get(name) for name in required)

    write_executable(bin_dir / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    subprocess.run(
        [str(script), "up", "-d", "--scale", "writer=4"], env=env, check=True, capture_output=True, timeout=30
    )
    assert read_env_file(env_file) == first, "secrets must not change once written"
    base = f"compose --project-directory {ROOT} -f {COMPOSE_FILE} --env-file {env_file}"
    assert calls.read_text().splitlines() == [
        f"COMPOSE_PROFILES=cpu {base} up -d --build --wait",
        f"COMPOSE_PROFILES=gpu {base} up -d --scale writer=4",
    ]
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_topic_script_creates_every_topic_and_dead_letter_topic(tmp_path: Path) -> None:
    log, config_copy = tmp_path / "calls", tmp_path / "client.properties"
    fake = (
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'while [ "$#" -gt 0 ]; do\n'
        f'  case "$1" in --command-config) cp "$2" {config_copy} ;; --describe) describe=1 ;; esac\n'
        "  shift\n"
        "done\n"
        # An existing topic with 3 partitions: the script must grow it.
        'if [ -n "${describe:-}" ]; then\n'
        '  printf "Topic: t\\tTopicId: x\\tPartitionCount: 3\\tReplicationFactor: 1\\n"\n'
        "fi\n"
    )
    write_executable(tmp_path / "kafka-topics.sh", fake)
    env = {
        "PATH": "/usr/bin:/bin",
        "KAFKA_BIN": str(tmp_path),
        "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093",
        "EPOCHSCOPE_KAFKA_PARTITIONS": "9",
        "EPOCHSCOPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EPOCHSCOPE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "EPOCHSCOPE_KAFKA_SASL_USERNAME": "epochscope",
        "EPOCHSCOPE_KAFKA_SASL_PASSWORD": "pw",
        "TOPIC_REPLICATION_FACTOR": "3",
    }
    result = subprocess.run(["sh", str(TOPICS_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    calls = [shlex.split(line) for line in log.read_text().splitlines()]

    def option(call: list[str], name: str) -> str:
        return call[call.index(name) + 1]

    created = {option(call, "--topic"): call for call in calls if "--create" in call}
    expected = {*ALL_TOPICS, *(dead_letter_topic(topic) for topic in ALL_TOPICS)}
    assert set(created) == expected
    for call in created.values():
        assert option(call, "--bootstrap-server") == "broker-1:9093"
        assert option(call, "--partitions") == "9" and option(call, "--replication-factor") == "3"
        assert "--if-not-exists" in call
    grown = {option(call, "--topic") for call in calls if "--alter" in call and option(call, "--partitions") == "9"}
    assert grown == expected
    properties = config_copy.read_text()
    assert "security.protocol=SASL_SSL" in properties and "sasl.mechanism=SCRAM-SHA-512" in properties
    assert 'ScramLoginModule required username="epochscope" password="pw";' in properties


# ----------------------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def pip_commands(run: str) -> list[list[str]]:
    """The pip invocations in a RUN line, as argument lists after `pip`."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in [*lexer, ";"]:
        if token not in ("&&", "||", ";", "|"):
            words.append(token)
            continue
        if words[:1] in (["pip"], ["pip3"]):
            commands.append(words[1:])
        elif words[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"]):
            commands.append(words[3:])
        words = []
    return commands


VALUE_OPTIONS = {"-w", "--wheel-dir", "-i", "--index-url", "--extra-index-url", "-c", "--constraint", "-r"}


def pip_targets(arguments: list[str]) -> list[str]:
    targets, skip = [], False
    for word in arguments[1:]:
        if skip:
            skip = False
        elif word in VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            targets.append(word)
    return targets


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, arguments))
    return result


def build_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    args = {}
    for keyword, arguments in instructions:
        if keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


@pytest.mark.parametrize("package", ["api", "writer", "trainer"])
def test_dockerfile_installs_exactly_its_service(package: str) -> None:
    instructions = dockerfile_instructions(DEPLOY / f"{package}.Dockerfile")
    builder, final = stages(instructions)[0], stages(instructions)[-1]
    expected_sources = {PACKAGE_DIRS[name].relative_to(ROOT).as_posix() for name in IMAGE_PACKAGES[package]}

    copied = {Path(arguments.split()[0]).as_posix() for keyword, arguments in builder if keyword == "COPY"}
    assert copied == expected_sources
    wheel_builds = [cmd for keyword, arguments in builder if keyword == "RUN" for cmd in pip_commands(arguments)]
    assert len(wheel_builds) == 1 and wheel_builds[0][0] == "wheel" and "--no-deps" in wheel_builds[0]
    assert {Path(target).as_posix() for target in pip_targets(wheel_builds[0])} == expected_sources
    for source in expected_sources:
        name = tomllib.loads((ROOT / source / "pyproject.toml").read_text())["project"]["name"]
        assert name in {f"epochscope-{p}" for p in IMAGE_PACKAGES[package]}

    installs = [cmd for keyword, arguments in final if keyword == "RUN" for cmd in pip_commands(arguments)]
    wheel_installs = [cmd for cmd in installs if pip_targets(cmd) == ["/wheels/*.whl"]]
    assert len(wheel_installs) == 1, "the final stage installs the built wheels, once"
    others = [target for cmd in installs if cmd not in wheel_installs for target in pip_targets(cmd)]
    dependencies = [
        Requirement(dep) for p in IMAGE_PACKAGES[package] for dep in pyproject(p)["project"]["dependencies"]
    ]
    args = build_args(instructions)
    if package == "trainer":
        (torch_pin,) = [dep for dep in dependencies if dep.name == "torch"]
        assert torch_pin.specifier == SpecifierSet(f"=={args['TORCH_VERSION']}"), "TORCH_VERSION != the pin"
        assert others == ["torch==${TORCH_VERSION}"]
        (torch_install,) = [cmd for cmd in installs if cmd not in wheel_installs]
        assert torch_install[torch_install.index("--index-url") + 1] == "${TORCH_INDEX_URL}"
        assert args["TORCH_VARIANT"] == "cpu" and "${TORCH_VARIANT}" in args["TORCH_INDEX_URL"]
        assert installs.index(torch_install) < installs.index(wheel_installs[0]), "torch before the wheels"
    else:
        assert others == []
        assert all(dep.name != "torch" for dep in dependencies)

    user = [arguments for keyword, arguments in final if keyword == "USER"]
    assert user and user[-1] not in ("root", "0"), "the image runs as root"
    keywords = [keyword for keyword, _ in final]
    assert keywords.index("USER") > max(i for i, keyword in enumerate(keywords) if keyword == "RUN")
    (command,) = [json.loads(arguments) for keyword, arguments in final if keyword == "CMD"]
    assert command[0] in image_scripts(package)
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", final[0][1])
    for source in expected_sources:
        requires = tomllib.loads((ROOT / source / "pyproject.toml").read_text())["project"]["requires-python"]
        assert args["PYTHON_VERSION"] in SpecifierSet(requires)
    env_lines = " ".join(arguments for keyword, arguments in final if keyword == "ENV")
    assert set(ENV_NAME.findall(env_lines)) <= env_names(COMPOSE_SETTINGS[package])


def build_wheels(packages: list[str], out: Path, scratch: Path) -> list[Path]:
    """`pip wheel --no-deps` from clean copies of the sources, as the Dockerfiles do."""
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__")
    sources = []
    for package in packages:
        copy = scratch / package
        shutil.copytree(PACKAGE_DIRS[package], copy, ignore=ignore)
        sources.append(str(copy))
    no_isolation = ["--no-build-isolation"] if _has_setuptools() else []  # faster, and no index needed
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *no_isolation, "-q", "-w", str(out), *sources],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return sorted(out.glob("*.whl"))


def _has_setuptools() -> bool:
    try:
        import setuptools  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env = {k: v for k, v in env.items() if not k.startswith("EPOCHSCOPE_")}
    return {**env, **extra}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("package", ["api", "writer"])
def test_service_wheel_installs_into_a_fresh_venv_without_torch(package: str, tmp_path: Path) -> None:
    """What the image's install step does: the image's wheels plus their dependencies, nothing else."""
    wheels = build_wheels(list(IMAGE_PACKAGES[package]), tmp_path / "wheels", tmp_path / "src")
    assert [wheel.name.split("-")[0] for wheel in wheels] == sorted(f"epochscope_{p}" for p in IMAGE_PACKAGES[package])
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)  # a base interpreter, no site-packages
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *map(str, wheels)],
        capture_output=True,
        text=True,
        timeout=280,
        env=clean_env(),
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, env=clean_env(**env), cwd=tmp_path
        )

    no_torch = run_python("import torch")
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    installed = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert not {name for name in installed if name in ("torch", "triton") or name.startswith("nvidia-")}
    assert f"epochscope-{package}" in installed and "epochscope-schemas" in installed
    for script in image_scripts(package):
        assert (env_dir / "bin" / script).is_file(), f"console script {script} missing"
    if package == "api":
        smoke = run_python(
            "from epochscope_api.main import create_app; import epochscope_db.migrate; "
            "app = create_app(); print(sorted(app.openapi()['paths']))",
            EPOCHSCOPE_JWT_SECRET="x",
            EPOCHSCOPE_JOB_TOKEN_SECRET="y",
        )
        assert smoke.returncode == 0, smoke.stderr
        assert "'/healthz'" in smoke.stdout and "'/readyz'" in smoke.stdout
    else:
        smoke = run_python("import epochscope_writer.main, epochscope_writer.adapters.health")
        assert smoke.returncode == 0, smoke.stderr
        helped = subprocess.run(
            [str(env_dir / "bin" / "epochscope-writer"), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert helped.returncode == 0 and "--health-port" in helped.stdout


# ---------------------------------------------------------------------------------------------- Kubernetes


def load_manifests(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


BASE = sorted(p for p in (K8S / "base").glob("*.yaml") if p.name not in ("kustomization.yaml", "secrets.example.yaml"))


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    docs = load_manifests([*BASE, K8S / "base/secrets.example.yaml", *K8S.glob("keda/*.yaml"), *K8S.glob("hpa/*.yaml")])
    objects = {}
    for doc in docs:
        if doc["kind"] == "Kustomization":
            continue
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in objects, f"{key} defined twice"
        objects[key] = doc
    return objects


def config_data(manifests: dict, kind: str, name: str) -> dict[str, str]:
    doc = manifests[(kind, name)]
    return {**doc.get("data", {}), **doc.get("stringData", {})}


def pod_specs(manifests: dict) -> dict[str, dict[str, Any]]:
    return {
        name: doc["spec"]["template"]["spec"]
        for (kind, name), doc in manifests.items()
        if kind in ("Deployment", "Job")
    }


def container_env(manifests: dict, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env with $(VAR) expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        env.update(config_data(manifests, kind, ref["name"]))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        else:
            ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"].get("configMapKeyRef")
            kind = "Secret" if "secretKeyRef" in item["valueFrom"] else "ConfigMap"
            env[item["name"]] = config_data(manifests, kind, ref["name"])[ref["key"]]
    return env


def test_kustomizations_cover_every_manifest() -> None:
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    assert sorted(base["resources"]) == sorted(path.name for path in BASE)
    assert base["namespace"] == "epochscope"
    autoscalers = {}
    for overlay in ("keda", "hpa"):
        kustomization = yaml.safe_load((K8S / overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"][0] == "../base"
        extra = load_manifests([K8S / overlay / name for name in kustomization["resources"][1:]])
        autoscalers[overlay] = {doc["kind"] for doc in extra}
    # KEDA makes its own HPA: the fallback HPA must never be applied beside the ScaledObject.
    assert autoscalers == {"keda": {"ScaledObject", "TriggerAuthentication"}, "hpa": {"HorizontalPodAutoscaler"}}


def test_k8s_has_the_required_objects(manifests: dict) -> None:
    required = {
        ("Namespace", "epochscope"),
        ("ConfigMap", "epochscope-kafka"),
        ("Secret", "epochscope-db"),
        ("Deployment", "api"),
        ("Service", "api"),
        ("Deployment", "writer"),
        ("Service", "writer"),
        ("Deployment", "trainer"),
        ("Job", "epochscope-migrate"),
        ("Job", "epochscope-topics"),
        ("ScaledObject", "writer"),
        ("HorizontalPodAutoscaler", "writer"),
    }
    assert required <= set(manifests)
    for (kind, name), doc in manifests.items():
        assert doc.get("apiVersion"), (kind, name)
        if kind != "Namespace":
            assert doc["metadata"]["namespace"] == "epochscope", (kind, name)


def test_k8s_workloads_are_wired_correctly(manifests: dict) -> None:
    for (kind, name), doc in manifests.items():
        if kind == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        if kind == "Service":
            pods = [
                d
                for (k, _), d in manifests.items()
                if k == "Deployment"
                and doc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(pods) == 1, f"Service {name} selects {len(pods)} Deployments"
            port_names = {p["name"] for c in pods[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
            assert {port["targetPort"] for port in doc["spec"]["ports"]} <= port_names
    images = {
        "api": "epochscope/api",
        "writer": "epochscope/writer",
        "trainer": "epochscope/trainer",
        "epochscope-migrate": "epochscope/api",
        "epochscope-topics": "apache/kafka:",
    }
    for name, spec in pod_specs(manifests).items():
        (container,) = spec["containers"]
        assert container["image"].startswith(images[name])
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        package = container["image"].removeprefix("epochscope/")
        if package in IMAGE_PACKAGES:
            assert container["command"][0] in image_scripts(package), name
        mounts = {mount["name"] for mount in container.get("volumeMounts", [])}
        assert mounts <= {volume["name"] for volume in spec.get("volumes", [])}, name


def test_k8s_probes_hit_the_ports_the_services_listen_on(manifests: dict) -> None:
    specs = pod_specs(manifests)
    api_port = int(config_data(manifests, "ConfigMap", "epochscope-api")["EPOCHSCOPE_API_PORT"])
    writer_port = int(config_data(manifests, "ConfigMap", "epochscope-writer")["EPOCHSCOPE_WRITER_HEALTH_PORT"])
    for name, port in (("api", api_port), ("writer", writer_port)):
        (container,) = specs[name]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http = container[probe]["httpGet"]
            assert http["path"] == path, (name, probe)
            assert ports.get(http["port"], http["port"]) == port, (name, probe)


def test_k8s_trainer_is_pinned_to_gpu_nodes(manifests: dict) -> None:
    spec = pod_specs(manifests)["trainer"]
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any("nvidia.com/gpu" in key for key in spec["nodeSelector"])
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in spec["tolerations"])
    assert not any("DATABASE" in name for name in container_env(manifests, container)), "no DB credentials"


def test_k8s_settings_resolve_and_parse_for_each_service(manifests: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, spec in pod_specs(manifests).items():
        (container,) = spec["containers"]
        env = container_env(manifests, container)  # raises KeyError on a dangling reference
        used = {key for key in env if key.startswith("EPOCHSCOPE_")}
        cls = K8S_SETTINGS[name]
        unknown = used - env_names(cls)
        assert not unknown, f"{name} gets {sorted(unknown)}, which its settings do not read"
        assert required_env_names(cls) <= used, name
        settings = load_settings(cls, {key: env[key] for key in used}, monkeypatch)
        if name in ("api", "writer"):
            assert settings.database_url.startswith(f"postgresql://epochscope_{name}:")
            assert settings.database_url.endswith("?sslmode=require")
    migrate = pod_specs(manifests)["epochscope-migrate"]
    assert migrate["containers"][0]["command"] == ["epochscope-migrate"]
    assert migrate["restartPolicy"] in ("Never", "OnFailure")


def test_k8s_topics_job_runs_the_same_script_as_compose(manifests: dict) -> None:
    spec = pod_specs(manifests)["epochscope-topics"]
    (volume,) = [v for v in spec["volumes"] if "configMap" in v]
    script = config_data(manifests, "ConfigMap", volume["configMap"]["name"])["create-topics.sh"]
    assert script == TOPICS_SCRIPT.read_text(), "deploy/k8s/base/topics-script.yaml drifted from create-topics.sh"
    assert spec["containers"][0]["command"][-1].endswith("/create-topics.sh")


def test_k8s_writers_scale_on_consumer_lag_with_an_hpa_fallback(manifests: dict) -> None:
    kafka = config_data(manifests, "ConfigMap", "epochscope-kafka")
    partitions = int(kafka["EPOCHSCOPE_KAFKA_PARTITIONS"])
    scaled = manifests[("ScaledObject", "writer")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "writer"
    assert 2 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] <= partitions
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == set(WRITER_TOPICS)
    sasl = {None: None, "SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256", "PLAIN": "plaintext"}
    for trigger in triggers:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka" and meta["consumerGroup"] == WRITERS_GROUP
        assert meta["bootstrapServers"] == kafka["EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS"]
        assert meta.get("sasl") == sasl[kafka.get("EPOCHSCOPE_KAFKA_SASL_MECHANISM")]
        assert (meta.get("tls") == "enable") == kafka["EPOCHSCOPE_KAFKA_SECURITY_PROTOCOL"].endswith("SSL")
        auth = manifests[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in config_data(manifests, "Secret", ref["name"])
    hpa = manifests[("HorizontalPodAutoscaler", "writer")]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "writer"}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions
    writer = pod_specs(manifests)["writer"]["containers"][0]
    assert writer["resources"]["requests"]["cpu"], "CPU utilisation needs a CPU request"
    assert manifests[("Deployment", "writer")]["spec"]["replicas"] >= 2


def test_k8s_manifests_match_the_kubernetes_schemas(manifests: dict) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    checked = 0
    for doc in manifests.values():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked field by field above
        kubernetes_validate.validate(doc, "1.30", strict=True)
        checked += 1
    assert checked >= 15


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ["keda", "hpa"])
def test_kustomize_renders_each_overlay(overlay: str, manifests: dict) -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(K8S / overlay)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    expected = {key for key in manifests if key[0] != "Secret"}
    expected -= (
        {("HorizontalPodAutoscaler", "writer")}
        if overlay == "keda"
        else {("ScaledObject", "writer"), ("TriggerAuthentication", "kafka-sasl")}
    )
    assert kinds == expected
    for doc in docs:
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert ":" in container["image"], f"{doc['metadata']['name']} has an untagged image"
