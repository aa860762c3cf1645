"""`kubectl kustomize` for the features deploy/k8s uses (resources, namespace, images), in Python, so the overlays
are rendered on every machine. Any other kustomization field is refused, not ignored: a change that needs the real
kustomize fails here loudly instead of being rendered wrong."""

from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}


def render(folder: Path) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize folder` would print, in resource order."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"{folder}/kustomization.yaml: fields this renderer does not know: {sorted(unsupported)}")
    docs: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if path.is_dir():
            docs += render(path)
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    namespace = kustomization.get("namespace")
    for doc in docs:
        if namespace and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for image in kustomization.get("images", []):
            _set_image(doc, image)
    return docs


def _set_image(doc: dict[str, Any], image: dict[str, str]) -> None:
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown:
        raise ValueError(f"image fields this renderer does not know: {sorted(unknown)}")
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    if doc["kind"] == "CronJob":
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name, tag = container["image"], None
        if ":" in name.rsplit("/", 1)[-1]:  # a tag, not a registry's port
            name, tag = name.rsplit(":", 1)
        if name == image["name"]:
            tag = image.get("newTag", tag)
            container["image"] = image.get("newName", name) + (f":{tag}" if tag else "")
