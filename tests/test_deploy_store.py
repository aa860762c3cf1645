"""The object store in the deployments, checked without Docker or a cluster: MinIO and its one-shot bucket set-up
in docker-compose (run here against a stand-in `mc`), and the store settings of the API and the trainer in compose
and Kubernetes: the API read-write, the trainer read-only keys and no database, the two sharing no volume."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COMPOSE_FILE, DEPLOY, K8S, interpolate, load_settings, read_env_file, write_executable
from test_deploy_compose import compose_env_for_tests
from test_deploy_k8s import BASE, config_data, container_env, load_manifests, pod_specs

from epochscope_api.settings import ApiSettings
from epochscope_trainer.settings import TrainerSettings

BUCKET_SCRIPT = DEPLOY / "minio" / "create-bucket.sh"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def resolved_env(service: dict[str, Any], shell: dict[str, str]) -> dict[str, str]:
    return {
        key: interpolate(str(value), shell) if value is not None else shell[key]
        for key, value in service["environment"].items()
        if value is not None or key in shell
    }


def test_minio_is_pinned_healthy_and_on_a_named_volume(services: dict[str, Any]) -> None:
    minio, setup = services["minio"], services["store-init"]
    for service, repository in ((minio, "minio/minio:"), (setup, "minio/mc:")):
        image = interpolate(service["image"], {})
        assert image.startswith(repository) and ":RELEASE." in image, f"{image} is not a pinned release"
    assert minio["healthcheck"]["test"] and minio["command"][:2] == ["server", "/data"]
    assert [mount.split(":")[0] for mount in minio["volumes"]] == ["minio-data"]
    assert setup["restart"] == "no" and setup["depends_on"] == {"minio": {"condition": "service_healthy"}}
    (mount,) = setup["volumes"]
    assert mount.split(":")[0] == "./deploy/minio/create-bucket.sh" and mount.endswith(":ro")
    assert setup["entrypoint"][-1] == mount.split(":")[1]


def test_the_api_and_the_trainer_read_the_store_with_their_own_keys(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    shell = compose_env_for_tests()
    api_env = resolved_env(services["api"], shell)
    api = load_settings(ApiSettings, {k: v for k, v in api_env.items() if k.startswith("EPOCHSCOPE_")}, monkeypatch)
    assert isinstance(api, ApiSettings)
    assert [model.id for model in api.models] == ["smollm2-135m-instruct"]  # EPOCHSCOPE_MODELS unset: the demo
    setup = resolved_env(services["store-init"], shell)
    for name in ("trainer", "trainer-cpu"):
        env = resolved_env(services[name], shell)
        assert not any("DATABASE" in key or "DB_PASSWORD" in key for key in env), "the trainer has no DB credentials"
        trainer = load_settings(TrainerSettings, env, monkeypatch)
        assert isinstance(trainer, TrainerSettings)
        store = trainer.store
        assert (store.bucket, store.endpoint, store.allow_http) == ("epochscope", "http://minio:9000", True)
        assert store.bucket == api.store.bucket == setup["STORE_BUCKET"] and store.endpoint == api.store.endpoint
        assert store.access_key_id and store.secret_access_key and api.store.access_key_id
        assert store.access_key_id.get_secret_value() == setup["STORE_TRAINER_ACCESS_KEY"] == "epochscope-trainer"
        assert store.secret_access_key.get_secret_value() == setup["STORE_TRAINER_SECRET_KEY"]
        assert api.store.access_key_id.get_secret_value() == setup["STORE_API_ACCESS_KEY"] == "epochscope-api"
        assert services[name]["depends_on"]["store-init"] == {"condition": "service_completed_successfully"}
        shared = {m.split(":")[0] for m in services[name]["volumes"]} & {
            m.split(":")[0] for m in services["api"].get("volumes", [])
        }
        assert not shared, f"the API and the trainer share {shared}"
    assert "EPOCHSCOPE_STORE_LOCAL_DIR" not in api_env
    secrets = ("MINIO_ROOT_PASSWORD", "STORE_API_SECRET_KEY", "STORE_TRAINER_SECRET_KEY")
    assert all(read_env_file(DEPLOY / "compose.env.example")[name] == "" for name in secrets)  # compose.sh fills


def test_the_bucket_script_makes_a_read_write_user_and_a_read_only_user(tmp_path: Path) -> None:
    calls, policies = tmp_path / "calls", tmp_path / "policies"
    policies.mkdir()
    fake_mc = (
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" ' + f'{policies}/"$5".json; fi\n'
        'if [ "$1 $2 $3" = "admin policy attach" ]; then exit 1; fi\n'  # as if attached already
        'if [ "$1 $2 $3" = "admin user info" ]; then echo "PolicyName: epochscope-api,epochscope-trainer-read"; fi\n'
    )
    write_executable(tmp_path / "mc", fake_mc)
    env = {
        "PATH": "/usr/bin:/bin",
        "MC": str(tmp_path / "mc"),
        "MINIO_ROOT_USER": "root",
        "MINIO_ROOT_PASSWORD": "root-pw",
        "STORE_BUCKET": "datasets-bucket",
        "STORE_API_ACCESS_KEY": "api-user",
        "STORE_API_SECRET_KEY": "api-pw",
        "STORE_TRAINER_ACCESS_KEY": "trainer-user",
        "STORE_TRAINER_SECRET_KEY": "trainer-pw",
    }
    result = subprocess.run(["sh", str(BUCKET_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "alias set store http://minio:9000 root root-pw"
    assert "mb --ignore-existing store/datasets-bucket" in lines
    assert "admin user add store api-user api-pw" in lines and "admin user add store trainer-user trainer-pw" in lines
    assert "admin policy attach store epochscope-trainer-read --user trainer-user" in lines
    trainer = json.loads((policies / "epochscope-trainer-read.json").read_text())["Statement"]
    assert trainer == [  # reads any object by key; writes and deletes only checkpoints, under jobs/
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::datasets-bucket/*"]},
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": ["arn:aws:s3:::datasets-bucket/jobs/*"],
        },
    ]
    api_policy = json.loads((policies / "epochscope-api.json").read_text())
    api_actions = {action for statement in api_policy["Statement"] for action in statement["Action"]}
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"} <= api_actions
    del env["STORE_TRAINER_SECRET_KEY"]
    assert subprocess.run(["sh", str(BUCKET_SCRIPT)], env=env, capture_output=True, timeout=30).returncode != 0


def test_k8s_gives_the_trainer_read_only_store_keys_and_the_api_its_own() -> None:
    docs = load_manifests([*BASE, K8S / "base/secrets.example.yaml"])
    manifests = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    specs = pod_specs(manifests)
    (api,), (trainer,) = specs["api"]["containers"], specs["trainer"]["containers"]
    api_env, trainer_env = container_env(manifests, api), container_env(manifests, trainer)
    store = config_data(manifests, "ConfigMap", "epochscope-store")
    assert set(store) == {"EPOCHSCOPE_STORE_ENDPOINT", "EPOCHSCOPE_STORE_BUCKET", "EPOCHSCOPE_STORE_REGION"}
    for env in (api_env, trainer_env):
        assert store.items() <= env.items()
    trainer_secrets = {s["secretRef"]["name"] for s in trainer["envFrom"] if "secretRef" in s}
    assert trainer_secrets == {
        "epochscope-kafka-trainer",
        "epochscope-store-trainer",
        "epochscope-trainer-identity",  # its own Ed25519 identity: signs its heartbeats, no key shared with others
        "epochscope-dispatch-public-keys",  # the dispatcher's public keys: a trainer verifies starts, cannot sign one
    }
    assert trainer_env["EPOCHSCOPE_STORE_ACCESS_KEY_ID"] != api_env["EPOCHSCOPE_STORE_ACCESS_KEY_ID"]
    assert "read-only" in (K8S / "base" / "secrets.example.yaml").read_text()
    assert not any("DATABASE" in key or key.startswith("DB_") for key in trainer_env)
    catalog = json.loads(config_data(manifests, "ConfigMap", "epochscope-api")["EPOCHSCOPE_MODELS"])
    assert [entry["source"] for entry in catalog] == ["bundled:smollm2-135m-instruct"]
