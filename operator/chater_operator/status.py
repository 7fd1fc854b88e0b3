"""The ChaterGpt status: observedGeneration, replicas and conditions (pure).

Conditions follow the Kubernetes convention: type, status ("True"/"False"),
reason (CamelCase), message, and lastTransitionTime, which changes only when
the status of that condition changes, so an unchanged status is byte-equal and
is not written again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"

# (type, is true, reason, message) -> one condition, keeping its transition time.
ConditionBuilder = Callable[[str, bool, str, str], dict[str, Any]]


@dataclass(frozen=True)
class Problem:
    """Why the instance cannot be (fully) reconciled; shown as Degraded=True."""

    reason: str
    message: str


@dataclass(frozen=True)
class Rollout:
    """What the live Deployment says about its pods."""

    wanted: int
    ready: int
    updated: int
    total: int
    observed: bool  # the Deployment controller has seen the latest Deployment spec

    @classmethod
    def of(cls, deployment: Mapping[str, Any], default_replicas: int) -> Rollout:
        spec = deployment.get("spec", {})
        status = deployment.get("status", {})
        generation = deployment.get("metadata", {}).get("generation", 0)
        return cls(
            wanted=int(spec.get("replicas", default_replicas)),
            ready=int(status.get("readyReplicas", 0)),
            updated=int(status.get("updatedReplicas", 0)),
            total=int(status.get("replicas", 0)),
            observed=int(status.get("observedGeneration", 0)) >= int(generation),
        )

    @property
    def complete(self) -> bool:
        return (
            self.observed
            and self.updated >= self.wanted
            and self.ready >= self.wanted
            and self.total <= self.wanted  # no old pods left
        )


def build_status(
    *,
    previous: Mapping[str, Any],
    generation: int,
    namespace: str | None,
    problem: Problem | None,
    rollout: Rollout | None,
    now: datetime,
    gateway: Rollout | None = None,
) -> dict[str, Any]:
    """The status; `gateway` is the gateway's StatefulSet when it is enabled (applied or
    not: an enabled gateway always reports, 0 ready until its pods are)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    old = {c.get("type"): c for c in previous.get("conditions", []) if isinstance(c, Mapping)}

    def condition(kind: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        value = "True" if status else "False"
        before = old.get(kind, {})
        changed = before.get("status") != value
        return {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": stamp if changed else before.get("lastTransitionTime", stamp),
            "observedGeneration": generation,
        }

    conditions = [
        _ready(condition, rollout),
        _progressing(condition, rollout),
        condition(DEGRADED, True, problem.reason, problem.message)
        if problem
        else condition(DEGRADED, False, "AsExpected", "all children are applied"),
    ]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": rollout.wanted if rollout else 0,
        "readyReplicas": rollout.ready if rollout else 0,
        "conditions": conditions,
    }
    if namespace:
        status["childrenNamespace"] = namespace
    if gateway is not None:
        status["gateway"] = {"replicas": gateway.wanted, "readyReplicas": gateway.ready}
    elif "gateway" in previous:
        status["gateway"] = None  # merge patch: removes what a disabled gateway reported
    return status


def _ready(condition: ConditionBuilder, rollout: Rollout | None) -> dict[str, Any]:
    if rollout is None:
        return condition(READY, False, "NoDeployment", "the Deployment is not applied")
    if rollout.wanted == 0:
        return condition(READY, False, "ScaledToZero", "replicas is 0")
    counts = f"{rollout.ready}/{rollout.wanted} replicas ready"
    if rollout.ready >= rollout.wanted:
        return condition(READY, True, "ReplicasReady", counts)
    return condition(READY, False, "WaitingForReplicas", counts)


def _progressing(condition: ConditionBuilder, rollout: Rollout | None) -> dict[str, Any]:
    if rollout is None:
        return condition(PROGRESSING, False, "NoDeployment", "the Deployment is not applied")
    if rollout.complete:
        return condition(PROGRESSING, False, "RolledOut", "the rollout is complete")
    message = f"{rollout.updated}/{rollout.wanted} updated, {rollout.ready} ready"
    return condition(PROGRESSING, True, "RollingOut", message)


def condition_of(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for item in status.get("conditions", []):
        if isinstance(item, Mapping) and item.get("type") == kind:
            return item
    return None
