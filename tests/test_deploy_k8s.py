"""The Kubernetes manifests, checked without a cluster: kinds, fields, cross-references, probes, autoscaling,
the Kubernetes OpenAPI schemas (kubernetes-validate) and each overlay as kustomize renders it (tests/kustomize.py)."""

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import kustomize
import pytest
import yaml
from deploy_support import (
    IMAGE_PACKAGES,
    K8S,
    K8S_SETTINGS,
    TOPICS_SCRIPT,
    WRITER_TOPICS,
    env_names,
    filled_secret,
    image_scripts,
    load_settings,
    required_env_names,
)

from epochscope_schemas.topics import (
    WRITERS_GROUP,
)

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
        resolved = {key: env[key] for key in used}
        placeholders = {key for key, value in resolved.items() if value == "REPLACE_ME"}
        if name in ("api", "writer", "epochscope-migrate") and placeholders:
            with pytest.raises(ValueError, match="placeholder"):  # the example's secrets, left as they are
                load_settings(cls, resolved, monkeypatch)
        # As an operator fills them in:
        settings = load_settings(cls, resolved | {key: filled_secret(key) for key in placeholders}, monkeypatch)
        if name in ("api", "writer"):
            assert settings.database_url.startswith(f"postgresql://epochscope_{name}:")
            assert settings.database_url.endswith("?sslmode=require")
    migrate = pod_specs(manifests)["epochscope-migrate"]
    assert migrate["containers"][0]["command"] == ["epochscope-migrate"]
    assert migrate["restartPolicy"] in ("Never", "OnFailure")


def test_k8s_gives_each_key_to_the_services_that_need_it_alone(
    manifests: dict,
) -> None:
    specs = pod_specs(manifests)
    env = {name: container_env(manifests, specs[name]["containers"][0]) for name in ("api", "trainer", "writer")}
    assert "EPOCHSCOPE_DISPATCH_PRIVATE_KEY" in env["api"] and "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS" in env["trainer"]
    assert "EPOCHSCOPE_DISPATCH_PRIVATE_KEY" not in env["trainer"]  # a trainer can verify a start, never sign one
    assert not {"EPOCHSCOPE_DISPATCH_PRIVATE_KEY", "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS"} & set(env["writer"])
    assert "EPOCHSCOPE_TRAINER_IDENTITY_KEY" in env["trainer"] and "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS" in env["writer"]
    assert "EPOCHSCOPE_TRAINER_IDENTITY_KEY" not in env["writer"] | env["api"]  # only a trainer signs its heartbeats
    for name, secret in (
        ("api", "epochscope-dispatch-private-key"),
        ("trainer", "epochscope-dispatch-public-keys"),
        ("trainer", "epochscope-trainer-identity"),
        ("writer", "epochscope-accepted-trainer-keys"),
    ):
        refs = [s for s in specs[name]["containers"][0]["envFrom"] if s.get("secretRef", {}).get("name") == secret]
        assert refs and not any(s.get("optional") for s in refs), name


def test_k8s_upload_scan_memory_fits_inside_the_api_pod(manifests: dict) -> None:
    (api,) = pod_specs(manifests)["api"]["containers"]
    limit = api["resources"]["limits"]["memory"]
    units = {"Mi": 1 << 20, "Gi": 1 << 30}
    pod_bytes = int(limit[:-2]) * units[limit[-2:]]
    scan_bytes = int(container_env(manifests, api)["EPOCHSCOPE_SCAN_MEMORY_BYTES"])
    assert scan_bytes <= pod_bytes // 2, (scan_bytes, limit)  # the API's own memory beside the scan's


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
    checked = 0
    for doc in manifests.values():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked field by field above
        kubernetes_validate.validate(doc, "1.30", strict=True)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("overlay", ["keda", "hpa"])
def test_kustomize_renders_each_overlay(overlay: str, manifests: dict) -> None:
    docs = kustomize.render(K8S / overlay)
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    expected = {key for key in manifests if key[0] != "Secret"}
    expected -= (
        {("HorizontalPodAutoscaler", "writer")}
        if overlay == "keda"
        else {("ScaledObject", "writer"), ("TriggerAuthentication", "kafka-sasl")}
    )
    assert kinds == expected
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"epochscope"}
    for doc in docs:
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            assert ":" in container["image"], f"{doc['metadata']['name']} has an untagged image"
