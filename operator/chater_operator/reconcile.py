"""One reconciliation pass of a ChaterGpt, and its cleanup on deletion.

The same pass serves create, update, resume and the drift timer: validate the
spec, check that the referenced Secrets (and ConfigMap keys) exist, render the
children, apply only those that are missing or differ, prune what is no longer
wanted, then write the status (only when it changed) and tell the user what
happened through events.
A spec problem becomes Degraded=True and an event; it never raises, so kopf
does not retry it in a loop (the timer looks again). API failures that may
pass (5xx, timeouts) do raise, for kopf to retry with a delay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chater_operator import API_VERSION, KIND
from chater_operator.drift import Drift, compare
from chater_operator.errors import InvalidSpecError, KubeApiError
from chater_operator.gateway_spec import gateway_name
from chater_operator.kube import EventSink, KubeApi
from chater_operator.render import (
    OWNER_UID_LABEL,
    child_name,
    config_hash,
    managed_children,
    render_children,
)
from chater_operator.resources import ObjectRef
from chater_operator.spec import InstanceSpec, Owner, parse_spec
from chater_operator.status import DEGRADED, Problem, Rollout, build_status, condition_of


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reconciler:
    """What a pass needs from the outside world."""

    api: KubeApi
    events: EventSink
    clock: Callable[[], datetime] = utc_now
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("chater_operator"))


@dataclass
class Outcome:
    """What one pass did; the handlers log it and the tests assert on it."""

    applied: list[tuple[ObjectRef, Drift]] = field(default_factory=list)
    deleted: list[ObjectRef] = field(default_factory=list)
    problem: Problem | None = None
    status: dict[str, Any] = field(default_factory=dict)


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body["metadata"]
    return Owner(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        generation=int(meta.get("generation", 0)),
    )


def _cr_ref(owner: Owner) -> ObjectRef:
    return ObjectRef(API_VERSION, KIND, owner.namespace, owner.name)


def _owned_by(live: Mapping[str, Any], owner: Owner) -> bool:
    return bool(live.get("metadata", {}).get("labels", {}).get(OWNER_UID_LABEL) == owner.uid)


async def reconcile(body: Mapping[str, Any], ctx: Reconciler) -> Outcome:
    """Bring the children of one ChaterGpt to its spec and report in its status."""
    owner = owner_of(body)
    previous = body.get("status") or {}
    outcome = Outcome()
    rollout: Rollout | None = None
    gateway: Rollout | None = None
    gateway_enabled = False
    namespace: str | None = previous.get("childrenNamespace")
    try:
        spec = parse_spec(body.get("spec") or {}, owner)
    except InvalidSpecError as exc:
        outcome.problem = Problem(exc.reason, exc.message)
    else:
        namespace = spec.namespace
        gateway_enabled = spec.gateway.enabled
        outcome.problem, spec = await _missing_references(spec, ctx.api)
        if outcome.problem is not None:
            # Nothing is applied, but running pods still count in the status.
            rollout, gateway = await _live_rollouts(spec, ctx.api)
        else:
            children = render_children(spec)
            rollout, gateway = await _apply_children(children, spec, ctx, outcome)
            await _prune(children, spec, ctx.api, outcome)
            old_namespace = previous.get("childrenNamespace")
            if old_namespace and old_namespace != spec.namespace:
                # spec.namespace moved: the old children would otherwise be orphans.
                outcome.deleted += await delete_children(owner, old_namespace, ctx.api)
    outcome.status = build_status(
        previous=previous,
        generation=owner.generation,
        namespace=namespace,
        problem=outcome.problem,
        rollout=rollout,
        now=ctx.clock(),
        gateway=gateway if gateway_enabled else None,
    )
    if outcome.status != {key: previous.get(key) for key in outcome.status}:
        await ctx.api.patch_status(_cr_ref(owner), outcome.status)
    _report(body, previous, outcome, ctx)
    return outcome


async def _missing_references(
    spec: InstanceSpec, api: KubeApi
) -> tuple[Problem | None, InstanceSpec]:
    """What the pods would wait for in ContainerCreating: a Secret, a ConfigMap key; and
    the spec with the referenced ConfigMap keys' content hashes."""
    problem = await _missing_secrets(spec, api)
    if problem is not None:
        return problem, spec
    return await _read_config_map_keys(spec, api)


async def _read_config_map_keys(
    spec: InstanceSpec, api: KubeApi
) -> tuple[Problem | None, InstanceSpec]:
    own = child_name(spec.owner.name, "ConfigMap")
    catalogue = spec.model_catalogue
    for ref in spec.referenced_config_maps():
        if ref.name == own:
            return Problem(
                InvalidSpecError.reason,
                f"spec.modelCatalogue.configMapRef names {own}, the ConfigMap the operator "
                "writes for this instance: use spec.modelCatalogue.models, or another ConfigMap",
            ), spec
        # Not a Secret: the operator may read it (and does, to check the key and follow
        # its content: the pods read the file only when they start).
        live = await api.get(ObjectRef("v1", "ConfigMap", spec.namespace, ref.name))
        if live is None:
            return Problem(
                "ConfigMapNotFound",
                f"ConfigMap {ref.name} not found in namespace {spec.namespace}; the instance "
                "starts when it exists",
            ), spec
        keys = {**(live.get("data") or {}), **(live.get("binaryData") or {})}
        if ref.key not in keys:
            return Problem(
                "ConfigMapNotFound",
                f"ConfigMap {ref.name} in namespace {spec.namespace} has no key {ref.key}; "
                "the instance starts when it has",
            ), spec
        if catalogue is not None and ref == catalogue.config_map:
            read = dataclasses.replace(ref, content_hash=config_hash(keys[ref.key]))
            catalogue = dataclasses.replace(catalogue, config_map=read)
    return None, dataclasses.replace(spec, model_catalogue=catalogue)


async def _missing_secrets(spec: InstanceSpec, api: KubeApi) -> Problem | None:
    missing = [
        name
        for name in spec.referenced_secrets()
        if not await api.exists(ObjectRef("v1", "Secret", spec.namespace, name))
    ]
    if not missing:
        return None
    names = ", ".join(missing)
    return Problem(
        "SecretNotFound",
        f"Secret {names} not found in namespace {spec.namespace}; the instance starts "
        "when it exists",
    )


async def _apply_children(
    children: list[dict[str, Any]], spec: InstanceSpec, ctx: Reconciler, outcome: Outcome
) -> tuple[Rollout | None, Rollout | None]:
    """Apply what differs; the rollouts of the service's Deployment and the gateway's."""
    rollout: Rollout | None = None
    gateway: Rollout | None = None
    for child in children:
        ref = ObjectRef.of(child)
        try:
            live = await ctx.api.get(ref)
            if live is not None and not _owned_by(live, spec.owner) and _has_owner(live):
                outcome.problem = Problem(
                    "ChildConflict", f"{ref} belongs to another ChaterGpt; rename one of them"
                )
                continue
            drift = compare(child, live)
            if drift is not Drift.NONE:
                live = await ctx.api.apply(child)
                outcome.applied.append((ref, drift))
        except KubeApiError as exc:
            if exc.temporary:
                raise
            outcome.problem = Problem("ApplyFailed", exc.message)
            continue
        if ref.kind == "Deployment" and live is not None:
            rollout = Rollout.of(live, spec.replicas)
        if ref.kind == "StatefulSet" and live is not None:
            gateway = Rollout.of(live, spec.gateway.replicas)
    return rollout, gateway


async def _live_rollouts(spec: InstanceSpec, api: KubeApi) -> tuple[Rollout | None, Rollout | None]:
    name = child_name(spec.owner.name, "Deployment")
    live = await api.get(ObjectRef("apps/v1", "Deployment", spec.namespace, name))
    rollout = Rollout.of(live, spec.replicas) if live and _owned_by(live, spec.owner) else None
    if not spec.gateway.enabled:
        return rollout, None
    ref = ObjectRef("apps/v1", "StatefulSet", spec.namespace, gateway_name(spec.owner.name))
    live = await api.get(ref)
    gateway = (
        Rollout.of(live, spec.gateway.replicas) if live and _owned_by(live, spec.owner) else None
    )
    return rollout, gateway


def _has_owner(live: Mapping[str, Any]) -> bool:
    return bool(live.get("metadata", {}).get("labels", {}).get(OWNER_UID_LABEL))


async def _prune(
    children: list[dict[str, Any]], spec: InstanceSpec, api: KubeApi, outcome: Outcome
) -> None:
    """Delete children no longer rendered (an autoscaler or the gateway switched off)."""
    wanted = {ObjectRef.of(child) for child in children}
    for api_version, kind, name in managed_children(spec.owner.name):
        ref = ObjectRef(api_version, kind, spec.namespace, name)
        if ref in wanted:
            continue
        live = await api.get(ref)
        if live is not None and _owned_by(live, spec.owner) and await api.delete(ref):
            outcome.deleted.append(ref)


async def delete_children(owner: Owner, namespace: str, api: KubeApi) -> list[ObjectRef]:
    """Delete this owner's children in one namespace (never another owner's objects)."""
    deleted: list[ObjectRef] = []
    for api_version, kind, name in managed_children(owner.name):
        ref = ObjectRef(api_version, kind, namespace, name)
        live = await api.get(ref)
        if live is not None and _owned_by(live, owner) and await api.delete(ref):
            deleted.append(ref)
    return deleted


async def finalize(body: Mapping[str, Any], ctx: Reconciler) -> list[ObjectRef]:
    """On deletion: remove the children that owner references cannot reach.

    Children in the CR's own namespace carry owner references and are removed
    by the garbage collector; children elsewhere (spec.namespace, or a namespace
    the spec named before) are deleted here, before the finalizer is released.
    """
    owner = owner_of(body)
    namespaces = {
        (body.get("spec") or {}).get("namespace"),
        (body.get("status") or {}).get("childrenNamespace"),
    }
    deleted: list[ObjectRef] = []
    for namespace in sorted(ns for ns in namespaces if ns and ns != owner.namespace):
        deleted += await delete_children(owner, namespace, ctx.api)
    if deleted:
        ctx.events.emit(body, type="Normal", reason="Deleted", message="deleted " + _names(deleted))
    return deleted


def _names(refs: list[ObjectRef]) -> str:
    return ", ".join(f"{ref.kind}/{ref.name}" for ref in refs)


def _report(
    body: Mapping[str, Any], previous: Mapping[str, Any], outcome: Outcome, ctx: Reconciler
) -> None:
    """Events only for changes, so a steady instance does not fill the event log."""
    before = condition_of(previous, DEGRADED) or {}
    if outcome.applied:
        # A missing child is drift only if the last pass had applied everything.
        was_complete = before.get("status") == "False"
        drifted = [
            drift
            for _, drift in outcome.applied
            if drift is Drift.EDITED or (drift is Drift.MISSING and was_complete)
        ]
        reason = "DriftCorrected" if drifted else "Applied"
        message = "applied " + ", ".join(
            f"{ref.kind}/{ref.name} ({drift.value})" for ref, drift in outcome.applied
        )
        ctx.events.emit(body, type="Normal", reason=reason, message=message)
        ctx.logger.info("%s: %s", reason, message)
    if outcome.deleted:
        ctx.events.emit(
            body, type="Normal", reason="Pruned", message="deleted " + _names(outcome.deleted)
        )
    problem = outcome.problem
    if problem and (before.get("status") != "True" or before.get("reason") != problem.reason):
        ctx.events.emit(body, type="Warning", reason=problem.reason, message=problem.message)
        ctx.logger.warning("%s: %s", problem.reason, problem.message)
    elif problem is None and before.get("status") == "True":
        ctx.events.emit(body, type="Normal", reason="Recovered", message="all children applied")
