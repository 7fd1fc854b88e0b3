"""The HTTP gateway's children (pure): a StatefulSet, its Service and PodDisruptionBudget.

A StatefulSet for its stable pod names: GATEWAY_INSTANCE_ID is the pod name, so each pod
keeps one reply topic (`<prefix><pod name>`) across restarts instead of leaving a topic
behind per start. The pods take the instance's ConfigMap (Kafka, topics, models, the
files it names), so gateway and service always agree; the gateway's own settings are
literal env entries (a change rolls only the gateway's pods).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chater_operator.gateway_spec import gateway_name
from chater_operator.render import (
    Manifest,
    config_map_name,
    container_security_context,
    copy_json,
    labels,
    metadata,
    pod_annotations,
    pod_spec,
    secret_env,
    shared_mounts,
    shared_volumes,
)
from chater_operator.spec import InstanceSpec

GATEWAY_APP = "chater-gpt-gateway"
KEYS_MOUNT = "/etc/chater-gpt/gateway-keys"
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"memory": "128Mi", "cpu": "100m"},
    "limits": {"memory": "256Mi", "cpu": "500m"},
}
# After its drain the gateway closes its server (5 s), reply reader and producer (5 s).
CLOSE_SECONDS = 15
# The gateway calls no LLM (`python main.py gateway` asks for no backend's key): of the
# instance's secrets only Kafka's reach it.
# Kafka's secrets, and Redis (the job API's state, shared with the core); never an LLM key.
_GATEWAY_SECRETS = (
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_KEY_PASSWORD",
    "REDIS_URL",
)


def gateway_selector(spec: InstanceSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": GATEWAY_APP, "app.kubernetes.io/instance": spec.owner.name}


def gateway_labels(spec: InstanceSpec) -> dict[str, str]:
    return {**labels(spec), **gateway_selector(spec), "app.kubernetes.io/component": "gateway"}


def _metadata(spec: InstanceSpec) -> dict[str, Any]:
    meta = metadata(spec, gateway_name(spec.owner.name))
    meta["labels"] = gateway_labels(spec)
    return meta


def render_gateway(spec: InstanceSpec, config_map: Manifest) -> list[Manifest]:
    children = [
        render_stateful_set(spec, config_map),
        render_gateway_service(spec),
        render_gateway_pdb(spec),
    ]
    if spec.gateway.autoscaling.enabled:
        children.append(render_gateway_autoscaler(spec))
    return children


def gateway_env(spec: InstanceSpec) -> list[dict[str, Any]]:
    gateway = spec.gateway
    literals: dict[str, object | None] = {
        "GATEWAY_PORT": gateway.port,
        "GATEWAY_SHUTDOWN_GRACE_SECONDS": spec.shutdown_grace_seconds,
        "GATEWAY_TIMEOUT_SECONDS": gateway.timeout_seconds,
        "GATEWAY_STREAM_IDLE_SECONDS": gateway.stream_idle_seconds,
        "GATEWAY_MAX_BODY_BYTES": gateway.max_body_bytes,
        "GATEWAY_CORS_ORIGINS": ",".join(gateway.cors_origins) or None,
        "GATEWAY_REQUEST_TOPIC": gateway.request_topic,
        "GATEWAY_API_KEYS_FILE": gateway.api_keys and f"{KEYS_MOUNT}/{gateway.api_keys.key}",
    }
    env: list[dict[str, Any]] = [
        # One reply topic per pod, stable across restarts (downward API).
        {"name": "GATEWAY_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    env += [{"name": k, "value": str(v)} for k, v in literals.items() if v is not None]
    env += [item for item in secret_env(spec) if item["name"] in _GATEWAY_SECRETS]
    return env


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: InstanceSpec) -> dict[str, Any]:
    gateway = spec.gateway
    mounts = shared_mounts(spec)
    if gateway.api_keys is not None:
        mounts.append({"name": "api-keys", "mountPath": KEYS_MOUNT, "readOnly": True})
    return {
        "name": "gateway",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["python", "main.py", "gateway"],
        "envFrom": [{"configMapRef": {"name": config_map_name(spec)}}],
        "env": gateway_env(spec),
        "ports": [{"name": "http", "containerPort": gateway.port, "protocol": "TCP"}],
        # Creating the reply topic and starting its reader come before the first answer.
        "startupProbe": _probe("/livez", period=2, failures=30),
        "livenessProbe": _probe("/livez", period=10, failures=3),
        # Unready while the producer or reply reader fails, and from SIGTERM on.
        "readinessProbe": _probe("/readyz", period=5, failures=1),
        "resources": dict(gateway.resources) or copy_json(DEFAULT_RESOURCES),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def _volumes(spec: InstanceSpec) -> list[dict[str, Any]]:
    volumes = shared_volumes(spec)
    keys = spec.gateway.api_keys
    if keys is not None:
        # Not optional: without the file the gateway would be open to every caller.
        volumes.append(
            {
                "name": "api-keys",
                "secret": {
                    "secretName": keys.name,
                    "defaultMode": 0o440,
                    "items": [{"key": keys.key, "path": keys.key}],
                },
            }
        )
    return volumes


def render_stateful_set(spec: InstanceSpec, config_map: Manifest) -> Manifest:
    pod = pod_spec(
        spec,
        container=_container(spec),
        volumes=_volumes(spec),
        selector=gateway_selector(spec),
        # Open requests finish for the drain time, the rest get 503, then it closes.
        grace_seconds=spec.shutdown_grace_seconds + CLOSE_SECONDS,
    )
    stateful_set_spec: dict[str, Any] = {
        # Required by StatefulSet; the pods need no DNS names of their own.
        "serviceName": gateway_name(spec.owner.name),
        "replicas": spec.gateway.replicas,
    }
    if spec.gateway.autoscaling.enabled:
        # The autoscaler owns the count; applying ours would fight it.
        del stateful_set_spec["replicas"]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(spec),
        "spec": {
            **stateful_set_spec,
            # No ordering needed: the pods share nothing but the request topic.
            "podManagementPolicy": "Parallel",
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": gateway_selector(spec)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": gateway_labels(spec),
                    # Settings and the catalogue file are read only at start.
                    "annotations": pod_annotations(spec, config_map),
                },
                "spec": pod,
            },
        },
    }


def render_gateway_service(spec: InstanceSpec) -> Manifest:
    meta = _metadata(spec)
    meta["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.gateway.port),
        "prometheus.io/path": "/metrics",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": gateway_selector(spec),
            "ports": [
                {"name": "http", "port": spec.gateway.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def render_gateway_autoscaler(spec: InstanceSpec) -> Manifest:
    """An HPA on the pods' CPU. A pod scaled away drains like any stopping gateway (its
    open requests finish for the grace, the rest get 503, retryable); its reply topic
    expires with its retention."""
    scaling = spec.gateway.autoscaling
    target = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": gateway_name(spec.owner.name)}
    cpu = {"type": "Utilization", "averageUtilization": scaling.cpu_utilization}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": target,
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
        },
    }


def render_gateway_pdb(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": gateway_selector(spec)}},
    }
