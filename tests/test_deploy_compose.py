"""docker-compose.yml and its scripts, checked without a Docker engine.

Against the Compose Specification's JSON Schema (the copy check-jsonschema ships), then its shape: start
order, healthchecks, scalable writers, the GPU trainer and its CPU profile; every EPOCHSCOPE_* name in the
deploy files is one a settings class really reads, and each service's values parse; deploy/compose.sh and
deploy/kafka/create-topics.sh run against stand-ins for docker and kafka-topics.sh.
"""

import json
import re
import shlex
import stat
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import (
    COMPOSE_FILE,
    COMPOSE_SETTINGS,
    DEPLOY,
    ENV_NAME,
    KNOWN_NAMES,
    ROOT,
    TOPICS_SCRIPT,
    console_scripts,
    env_names,
    filled_secret,
    image_scripts,
    interpolate,
    load_settings,
    read_env_file,
    required_env_names,
    write_executable,
)

from epochscope_runtime.dispatch_keys import load_private_key, load_public_keys
from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.topics import (
    ALL_TOPICS,
    dead_letter_topic,
)

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
    for name in ("kafka", "postgres", "minio", "api", "writer"):
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    for one_shot in ("migrate", "topic-init", "store-init"):
        assert services[one_shot]["restart"] == "no"
    assert services["migrate"]["command"] == ["epochscope-migrate"]
    assert "epochscope-migrate" in console_scripts("db") and "epochscope-migrate" in image_scripts("api")
    after_setup = {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "topic-init": {"condition": "service_completed_successfully"},
    }
    assert services["writer"]["depends_on"] == after_setup  # writers never touch the object store
    store_ready = {"store-init": {"condition": "service_completed_successfully"}}
    assert services["api"]["depends_on"] == after_setup | store_ready
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


def test_compose_gives_the_dispatch_private_key_to_the_api_alone(compose: dict[str, Any]) -> None:
    services = compose["services"]
    private, public = "EPOCHSCOPE_DISPATCH_PRIVATE_KEY", "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS"
    assert services["api"]["environment"][private].startswith(f"${{{private}:?")
    for name in ("trainer", "trainer-cpu"):
        assert services[name]["environment"][public].startswith(f"${{{public}:?"), name
        assert private not in services[name]["environment"], name  # a trainer verifies starts, never signs one
    assert not {private, public} & set(services["writer"]["environment"])


def test_compose_gives_the_trainer_identity_key_to_the_trainer_alone(compose: dict[str, Any]) -> None:
    services = compose["services"]
    identity, accepted = "EPOCHSCOPE_TRAINER_IDENTITY_KEY", "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS"
    for name in ("trainer", "trainer-cpu"):
        assert services[name]["environment"][identity].startswith(f"${{{identity}:?"), name
    assert services["writer"]["environment"][accepted].startswith(f"${{{accepted}:?")
    holders = {name for name, service in services.items() if identity in service.get("environment", {})}
    assert holders == {"trainer", "trainer-cpu"}  # no writer or API could sign a heartbeat
    assert "EPOCHSCOPE_TRAINER_KEY" not in COMPOSE_FILE.read_text()  # the shared HMAC key is gone


def test_every_epochscope_name_in_deploy_files_is_a_real_setting() -> None:
    files = [COMPOSE_FILE, *DEPLOY.rglob("*")]
    for path in files:
        if path.is_file() and path.suffix in ("", ".yml", ".yaml", ".sh", ".example", ".Dockerfile", ".md"):
            names = {name for name in ENV_NAME.findall(path.read_text()) if not name.endswith("_")}  # not prefixes
            unknown = names - KNOWN_NAMES
            assert not unknown, f"{path.relative_to(ROOT)} names settings nobody reads: {sorted(unknown)}"


def compose_env_for_tests(defaults_only: bool = False) -> dict[str, str]:
    """deploy/compose.env.example with its blank secrets filled with random ones, as deploy/compose.sh does (the
    services refuse short ones in production); or the secrets alone."""
    env = read_env_file(DEPLOY / "compose.env.example")
    if defaults_only:
        return {name: filled_secret(name) for name, value in env.items() if not value}
    return {name: value or filled_secret(name) for name, value in env.items()}


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
            assert kafka.bootstrap_servers == "kafka:9092" and kafka.sasl_mechanism == "PLAIN"
            assert kafka.partitions == int(shell.get("EPOCHSCOPE_KAFKA_PARTITIONS", 6))
    assert loaded["api"].dispatch_signing_key() is not None
    assert loaded["trainer"].start_verifying_keys() is not None
    assert loaded["trainer"].identity() is not None and len(loaded["writer"].trainer_keys()) == 1
    assert loaded["api"].scan_memory_bytes == 256 << 20  # under the API's 512 MiB (Kubernetes) with room to spare
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
            "MINIO_ROOT_PASSWORD",
            "STORE_API_SECRET_KEY",
            "STORE_TRAINER_SECRET_KEY",
        )
    ]
    assert all(re.fullmatch(r"[0-9a-f]{48}", secret) for secret in secrets) and len(set(secrets)) == len(secrets)
    assert re.fullmatch(r"[0-9a-f]{22}", first["KAFKA_CLUSTER_ID"])
    signing = load_private_key(first["EPOCHSCOPE_DISPATCH_PRIVATE_KEY"])  # a matching Ed25519 pair, made by openssl
    (verifying,) = load_public_keys(first["EPOCHSCOPE_DISPATCH_PUBLIC_KEYS"])
    verifying.verify(signing.sign(b"start"), b"start")
    identity = load_private_key(first["EPOCHSCOPE_TRAINER_IDENTITY_KEY"])  # the trainer's pair, the writers accept it
    (accepted,) = load_public_keys(first["EPOCHSCOPE_ACCEPTED_TRAINER_KEYS"])
    accepted.verify(identity.sign(b"heartbeat"), b"heartbeat")
    assert first["EPOCHSCOPE_TRAINER_IDENTITY_KEY"] != first["EPOCHSCOPE_DISPATCH_PRIVATE_KEY"]
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
