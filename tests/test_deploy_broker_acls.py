"""Each service has its own broker principal with only the topics it needs (issue 23, item 2): the topics script
grants the ACLs (the API writes commands, trainers read commands and write events, writers read events and write
dead letters), and the Kubernetes workloads each log in as their own principal."""

import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml
from deploy_support import COMPOSE_FILE, TOPICS_SCRIPT
from test_deploy_k8s import container_env, manifests, pod_specs  # noqa: F401  fixture

PRINCIPALS = {"api": "User:epochscope-api", "trainer": "User:epochscope-trainer", "writer": "User:epochscope-writer"}
API, TRAINER, WRITER = PRINCIPALS.values()
EVENTS = ("training.predictions", "training.status", "trainers.heartbeats")
EXPECTED = {
    (API, "Write", "topic", "jobs.commands"),
    (TRAINER, "Read", "topic", "jobs.commands"),
    (TRAINER, "Read", "group", "trainers"),
    *((TRAINER, "Write", "topic", topic) for topic in (*EVENTS, "jobs.commands.dlq")),
    *((WRITER, "Read", "topic", topic) for topic in EVENTS),
    *((WRITER, "Write", "topic", f"{topic}.dlq") for topic in EVENTS),
    (WRITER, "Read", "group", "writers"),
    (WRITER, "Read", "group", "writers-heartbeats"),
}


def run_topics_script(tmp_path: Path, env: dict[str, str]) -> list[list[str]]:
    """The script against fake kafka-topics.sh and kafka-acls.sh; the ACL tool's calls."""
    log = tmp_path / "acl-calls"
    (tmp_path / "kafka-topics.sh").write_text("#!/bin/sh\n")
    (tmp_path / "kafka-acls.sh").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    for tool in ("kafka-topics.sh", "kafka-acls.sh"):
        (tmp_path / tool).chmod(0o755)
    base = {"PATH": "/usr/bin:/bin", "KAFKA_BIN": str(tmp_path), "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": "broker:9093"}
    result = subprocess.run(["sh", str(TOPICS_SCRIPT)], env=base | env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


def grants(calls: list[list[str]]) -> set[tuple[str, str, str, str]]:
    """(principal, operation, resource kind, resource name) of each --add; Describe alone is implied by the rest."""
    found = set()
    for call in calls:
        assert "--add" in call and call[call.index("--bootstrap-server") + 1] == "broker:9093"
        kind = "topic" if "--topic" in call else "group"
        principal, operation = call[call.index("--allow-principal") + 1], call[call.index("--operation") + 1]
        found.add((principal, operation, kind, call[call.index(f"--{kind}") + 1]))
    return {grant for grant in found if grant[1] != "Describe"}


def test_the_topics_script_grants_each_principal_only_what_it_needs(tmp_path: Path) -> None:
    env = {f"KAFKA_{name.upper()}_PRINCIPAL": principal for name, principal in PRINCIPALS.items()}
    calls = run_topics_script(tmp_path, env)
    assert grants(calls) == EXPECTED
    operations = {call[call.index("--operation") + 1] for call in calls}
    assert operations == {"Read", "Write", "Describe"}  # never All, Create, Alter or Delete
    assert not any("*" in part for call in calls for part in call)  # no wildcard resource or principal


def test_without_principals_the_script_grants_nothing(tmp_path: Path) -> None:
    assert run_topics_script(tmp_path, {}) == []


def test_each_kubernetes_workload_logs_in_to_the_broker_as_its_own_principal(
    manifests: dict[tuple[str, str], dict[str, Any]],  # noqa: F811  fixture
) -> None:
    specs = pod_specs(manifests)
    usernames = {}
    for workload in ("api", "trainer", "writer", "epochscope-topics"):
        (container,) = [c for c in specs[workload]["containers"]]
        usernames[workload] = container_env(manifests, container)["EPOCHSCOPE_KAFKA_SASL_USERNAME"]
    assert len(set(usernames.values())) == len(usernames), usernames  # nobody shares a principal
    topics = manifests[("ConfigMap", "epochscope-topics")]["data"]
    for service in ("api", "trainer", "writer"):
        assert topics[f"KAFKA_{service.upper()}_PRINCIPAL"] == f"User:{usernames[service]}"
    keda = manifests[("TriggerAuthentication", "kafka-sasl")]["spec"]["secretTargetRef"]
    assert {ref["name"] for ref in keda} == {"epochscope-kafka-writer"}  # lag is read as the writers


def test_each_compose_service_logs_in_to_the_bundled_broker_as_its_own_principal() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    usernames = {
        name: services[name]["environment"]["EPOCHSCOPE_KAFKA_SASL_USERNAME"].split(":-")[1].rstrip("}")
        for name in ("api", "writer", "trainer", "trainer-cpu", "topic-init")
    }
    assert usernames["trainer"] == usernames["trainer-cpu"]  # one service, two profiles
    del usernames["trainer-cpu"]
    assert len(set(usernames.values())) == len(usernames), usernames
    init = services["topic-init"]["environment"]
    for service in ("api", "trainer", "writer"):
        assert init[f"KAFKA_{service.upper()}_PRINCIPAL"].endswith(f":-{usernames[service]}}}")
    broker = services["kafka"]["environment"]
    jaas = broker["KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG"]
    assert all(f'user_{username}="' in jaas for username in usernames.values())
    assert (
        broker["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        and "StandardAuthorizer" in broker["KAFKA_AUTHORIZER_CLASS_NAME"]
    )
    assert broker["KAFKA_SUPER_USERS"].split(";") == [f"User:{usernames['topic-init']}", "User:ANONYMOUS"]
    assert "CONTROLLER://localhost:" in broker["KAFKA_LISTENERS"]  # ANONYMOUS: the container's own loopback only
    protocols = dict(pair.split(":") for pair in broker["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"CONTROLLER": "PLAINTEXT", "CLIENT": "SASL_PLAINTEXT"}  # clients always log in
