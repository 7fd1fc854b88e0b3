"""deploy/k8s/operator: valid manifests, least-privilege RBAC, a probed operator Deployment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chater_operator.render import managed_kinds
from chater_operator.resources import PLURALS

ROOT = Path(__file__).resolve().parents[3]
OPERATOR_DIR = ROOT / "deploy/k8s/operator"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((OPERATOR_DIR / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in documents(OPERATOR_DIR / name)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in all_documents() if doc["kind"] == kind]


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    docs = all_documents()
    assert {doc["kind"] for doc in docs} >= {
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


def rules() -> list[dict[str, Any]]:
    return [rule for role in of_kind("ClusterRole") for rule in role["rules"]]


def verbs_for(group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules()
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_has_no_wildcards_and_only_get_on_secrets() -> None:
    for rule in rules():
        assert "*" not in rule["verbs"], rule
        assert "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
    assert verbs_for("", "secrets") == {"get"}


def test_rbac_covers_exactly_what_the_operator_does_to_children() -> None:
    for api_version, kind in managed_kinds():
        group = api_version.rpartition("/")[0]
        assert verbs_for(group, PLURALS[(api_version, kind)]) == {
            "get",
            "create",
            "patch",
            "delete",
        }, kind
    assert verbs_for("chater.example.com", "chatergpts") == {"get", "list", "watch", "patch"}
    assert verbs_for("chater.example.com", "chatergpts/status") == {"get", "patch"}
    assert verbs_for("chater.example.com", "chatergpts/finalizers") == {"update"}
    assert verbs_for("", "events") == {"create"}


def test_bindings_name_the_operators_service_account() -> None:
    (account,) = of_kind("ServiceAccount")
    for binding in of_kind("ClusterRoleBinding"):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"],
            }
        ]


def test_operator_deployment_runs_kopf_with_a_probed_liveness_endpoint() -> None:
    (deployment,) = of_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == of_kind("ServiceAccount")[0]["metadata"]["name"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["args"][-2:] == ["-m", "chater_operator.handlers"]
    probe = container["livenessProbe"]["httpGet"]
    port = next(p for p in container["ports"] if p["name"] == probe["port"])
    assert (probe["path"], port["containerPort"]) == ("/healthz", 8080)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # never two operators at once


def test_dockerfile_runs_the_same_module_as_non_root() -> None:
    dockerfile = (ROOT / "operator/Dockerfile").read_text()
    assert "USER 10001" in dockerfile
    assert "chater_operator.handlers" in dockerfile
    assert "-r requirements.txt" in dockerfile


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl missing (scripts/ensure-test-services.sh installs it; CI always has it)",
)
def test_kustomize_renders_the_whole_install() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(OPERATOR_DIR)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert sorted(doc["kind"] for doc in docs) == sorted(doc["kind"] for doc in all_documents())
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
