"""Drift: a child is applied only when it is missing, its spec changed, or it was edited."""

from __future__ import annotations

import copy
from typing import Any

from chater_operator.drift import Drift, compare, stamp


def rendered(replicas: int = 3, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "labels": {"a": "b"}},
            "spec": {
                "replicas": replicas,
                "template": {
                    "spec": {"containers": [{"name": "c", "image": "i", "env": env or []}]}
                },
            },
        }
    )


def as_served(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: the manifest plus defaults, status and bookkeeping."""
    live = copy.deepcopy(manifest)
    live["metadata"].update({"uid": "x", "resourceVersion": "42", "generation": 3})
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = "/dev/log"
    live["status"] = {"readyReplicas": 3}
    return live


def test_a_served_object_with_defaults_has_no_drift() -> None:
    desired = rendered()
    assert compare(desired, as_served(desired)) is Drift.NONE


def test_missing_changed_and_edited_are_told_apart() -> None:
    desired = rendered()
    assert compare(desired, None) is Drift.MISSING
    assert compare(rendered(replicas=5), as_served(desired)) is Drift.CHANGED

    scaled_by_hand = as_served(desired)
    scaled_by_hand["spec"]["replicas"] = 1
    assert compare(desired, scaled_by_hand) is Drift.EDITED

    extra_env = as_served(desired)
    extra_env["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    assert compare(desired, extra_env) is Drift.EDITED


def test_a_removed_field_counts_as_a_change() -> None:
    # The subset check alone cannot see a field the spec no longer renders; the hash does.
    with_env = rendered(env=[{"name": "A", "value": "1"}])
    desired = rendered()
    del desired["spec"]["template"]["spec"]["containers"][0]["env"]
    stamp(desired)
    assert compare(desired, as_served(with_env)) is Drift.CHANGED
