"""Which kinds the operator touches, and where each lives in the API (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chater_operator import API_VERSION, KIND, PLURAL

# (apiVersion, kind) -> plural resource name. Only what the operator reads or writes.
PLURALS: Mapping[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Secret"): "secrets",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    (API_VERSION, KIND): PLURAL,
}


@dataclass(frozen=True)
class ObjectRef:
    """One namespaced object, addressable by URL."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        meta = manifest["metadata"]
        return cls(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])

    @property
    def path(self) -> str:
        plural = PLURALS[(self.api_version, self.kind)]
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{self.namespace}/{plural}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} in {self.namespace}"
