"""`InstanceSpec` -> the child manifests of one ChaterGpt (pure; no I/O).

Children: ConfigMap (settings, and the routes and model catalogue files when the spec
has them), Deployment, Service (metrics), PodDisruptionBudget and, when asked, a KEDA
ScaledObject (Kafka lag) or an HPA (CPU). Secrets reach the pod only through
`secretKeyRef` (or a Secret volume for Kafka TLS files): no rendered object ever holds a
secret value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chater_operator import API_VERSION, KIND
from chater_operator.drift import stamp
from chater_operator.gateway_spec import gateway_name
from chater_operator.spec import API_KEY_VARIABLES, InstanceSpec, Route

Manifest = dict[str, Any]

METRICS_PORT = 8000
APP_NAME = "chater-gpt"
MANAGED_BY = "chater-operator"
OWNER_UID_LABEL = "chater.example.com/owner-uid"
CONFIG_HASH_ANNOTATION = "chater.example.com/config-hash"
CATALOGUE_HASH_ANNOTATION = "chater.example.com/catalogue-hash"
TLS_MOUNT = "/etc/kafka/tls"
# The routes file: a key of the instance's ConfigMap, mounted read-only as a file.
ROUTES_KEY = "routes.json"
ROUTES_MOUNT = "/etc/chater-gpt/routes"
ROUTES_FILE = f"{ROUTES_MOUNT}/{ROUTES_KEY}"
# The model catalogue file (MODEL_CATALOGUE_FILE): the inline one is a key of the instance's
# ConfigMap, like the routes file; a referenced one is the key of the user's ConfigMap.
CATALOGUE_KEY = "models.json"
CATALOGUE_MOUNT = "/etc/chater-gpt/catalogue"
CATALOGUE_VOLUME = "model-catalogue"
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"memory": "256Mi", "cpu": "250m"},
    "limits": {"memory": "512Mi", "cpu": "500m"},
}
# Kubernetes kills the pod this long after SIGTERM; the service drains for
# SHUTDOWN_GRACE_SECONDS, so the pod gets that plus room to commit and flush.
TERMINATION_MARGIN_SECONDS = 10
RUN_AS_ID = 10001


def render_children(spec: InstanceSpec) -> list[Manifest]:
    """Every child of the instance, stamped with the hash the drift check compares."""
    config_map = render_config_map(spec)
    children = [
        config_map,
        render_deployment(spec, config_map),
        render_service(spec),
        render_pod_disruption_budget(spec),
    ]
    autoscaler = render_autoscaler(spec)
    if autoscaler is not None:
        children.append(autoscaler)
    if spec.gateway.enabled:
        # Imported here: the gateway's rendering builds on this module's helpers.
        from chater_operator.gateway_render import render_gateway

        children += render_gateway(spec, config_map)
    return [stamp(child) for child in children]


def selector_labels(spec: InstanceSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": spec.owner.name}


def labels(spec: InstanceSpec) -> dict[str, str]:
    return {
        **selector_labels(spec),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "chater.example.com/owner-name": spec.owner.name,
        "chater.example.com/owner-namespace": spec.owner.namespace,
        OWNER_UID_LABEL: spec.owner.uid,
    }


def metadata(spec: InstanceSpec, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": spec.namespace, "labels": labels(spec)}
    if spec.same_namespace:
        # Owner references cannot cross namespaces; the finalizer cleans up those children.
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": spec.owner.name,
                "uid": spec.owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def config_map_name(spec: InstanceSpec) -> str:
    return child_name(spec.owner.name, "ConfigMap")


def render_config_map(spec: InstanceSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(spec, config_map_name(spec)),
        "data": config_data(spec),
    }


def config_data(spec: InstanceSpec) -> dict[str, str]:
    """The non-secret settings, as the service's environment variables, and the routes
    and inline model catalogue files.

    The pod takes its environment from these keys (envFrom) and reads `routes.json` and
    `models.json` as the files ROUTES_FILE and MODEL_CATALOGUE_FILE name (as environment
    names they are skipped, or ignored by the service). The pod template carries a hash of
    all of it, so a change of settings, routes or inline catalogue rolls the pods.
    """
    optional: dict[str, object | None] = {
        "OPENAI_BASE_URL": spec.openai_base_url,
        "KOBOLDCPP_API_URL": spec.koboldcpp_url,
        "REDIS_URL": spec.redis_url,  # only when given in clear; else a secretKeyRef
        "MAX_IN_FLIGHT": spec.max_in_flight,
        "REQUESTS_PER_MINUTE": spec.requests_per_minute,
        "DAILY_TOKEN_LIMIT": spec.daily_token_limit,
        "DAILY_COST_LIMIT_USD": spec.daily_cost_limit_usd,
        "USER_DAILY_COST_LIMIT_USD": spec.user_daily_cost_limit_usd,
        "KAFKA_SASL_MECHANISM": spec.kafka.sasl_mechanism,
        "IS_DEV": "true" if spec.is_dev else None,
        "ROUTES_FILE": ROUTES_FILE if spec.routes else None,
        "MODEL_CATALOGUE_FILE": catalogue_file(spec),
        # The service replies only to topics with this prefix: it must be the gateway's.
        "GATEWAY_REPLY_TOPIC_PREFIX": spec.gateway.reply_topic_prefix,
    }
    tls = spec.kafka.tls
    if tls is not None:
        optional["KAFKA_SSL_CA_LOCATION"] = tls.ca_key and f"{TLS_MOUNT}/{tls.ca_key}"
        optional["KAFKA_SSL_CERTIFICATE_LOCATION"] = tls.cert_key and f"{TLS_MOUNT}/{tls.cert_key}"
        optional["KAFKA_SSL_KEY_LOCATION"] = tls.key_key and f"{TLS_MOUNT}/{tls.key_key}"
    data = {
        "BOOTSTRAP_SERVER": spec.bootstrap_server,
        "REQUEST_TOPIC": spec.request_topic,
        "RESPONSE_TOPIC": spec.response_topic,
        "CONSUMER_GROUP": spec.consumer_group,
        "LLM_BACKEND": spec.backend,
        "MODEL": spec.model,
        "VISION_MODEL": spec.vision_model,
        "LOG_LEVEL": spec.log_level,
        "METRICS_PORT": str(METRICS_PORT),
        "SHUTDOWN_GRACE_SECONDS": str(spec.shutdown_grace_seconds),
        "KAFKA_SECURITY_PROTOCOL": spec.kafka.protocol,
        "REDIS_KEY_PREFIX": spec.redis_key_prefix,
    }
    data.update({key: str(value) for key, value in optional.items() if value})
    data.update(spec.extra_config)
    if spec.routes:
        data[ROUTES_KEY] = routes_document(spec.routes)
    if spec.model_catalogue is not None and spec.model_catalogue.models is not None:
        data[CATALOGUE_KEY] = catalogue_document(spec.model_catalogue.models)
    return data


def catalogue_file(spec: InstanceSpec) -> str | None:
    """Where the pod sees the model catalogue file (MODEL_CATALOGUE_FILE), if any."""
    catalogue = spec.model_catalogue
    if catalogue is None:
        return None
    key = catalogue.config_map.key if catalogue.config_map else CATALOGUE_KEY
    return f"{CATALOGUE_MOUNT}/{key}"


def catalogue_document(models: Mapping[str, Any]) -> str:
    """The service's catalogue file (JSON, snake_case keys, as spec.py translated them)."""
    return json.dumps({"models": copy_json(models)}, indent=2, ensure_ascii=False) + "\n"


def routes_document(routes: tuple[Route, ...]) -> str:
    """The service's routes file (snake_case keys; optional fields only when set)."""
    entries = []
    for route in routes:
        entry: dict[str, Any] = {
            "name": route.name,
            "request_topic": route.request_topic,
            "reply_topic": route.reply_topic,
            "shape": route.shape,
        }
        optional: dict[str, Any] = {
            "model": route.model,
            "system_prompt": route.system_prompt,
            "max_tokens": route.max_tokens,
            "response_format": copy_json(route.response_format),
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        entries.append(entry)
    return json.dumps({"routes": entries}, indent=2, ensure_ascii=False) + "\n"


def secret_env(spec: InstanceSpec) -> list[dict[str, Any]]:
    """Secret settings, each a secretKeyRef: the value stays in its Secret."""
    refs: list[tuple[str, str, str]] = []
    if spec.api_key is not None:
        variable = API_KEY_VARIABLES.get(spec.backend, "OPENAI_API_KEY")
        refs.append((variable, spec.api_key.name, spec.api_key.key))
    for provider, ref in spec.provider_keys.items():
        refs.append((API_KEY_VARIABLES[provider], ref.name, ref.key))
    if spec.redis_url_secret is not None:
        refs.append(("REDIS_URL", spec.redis_url_secret.name, spec.redis_url_secret.key))
    if spec.kafka.sasl is not None:
        sasl = spec.kafka.sasl
        refs.append(("KAFKA_SASL_USERNAME", sasl.name, sasl.username_key))
        refs.append(("KAFKA_SASL_PASSWORD", sasl.name, sasl.password_key))
    if spec.kafka.tls is not None and spec.kafka.tls.key_password_key:
        refs.append(
            ("KAFKA_SSL_KEY_PASSWORD", spec.kafka.tls.name, spec.kafka.tls.key_password_key)
        )
    return [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        for variable, name, key in refs
    ]


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: InstanceSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": APP_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "envFrom": [{"configMapRef": {"name": config_map_name(spec)}}],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # The startup probe gives a slow start (token tables, broker) room before liveness bites.
        "startupProbe": _probe("/livez", period=2, failures=30),
        "livenessProbe": _probe("/livez", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "resources": dict(spec.resources) if spec.resources else copy_json(DEFAULT_RESOURCES),
        "securityContext": container_security_context(),
        "volumeMounts": shared_mounts(spec),
    }
    env = secret_env(spec)
    if env:
        container["env"] = env
    return container


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "fsGroup": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def shared_mounts(spec: InstanceSpec) -> list[dict[str, Any]]:
    """The scratch emptyDir, and the files the instance's ConfigMap names (Kafka TLS,
    routes, catalogue): every pod that takes its environment from it needs them."""
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    if spec.kafka.tls is not None:
        mounts.append({"name": "kafka-tls", "mountPath": TLS_MOUNT, "readOnly": True})
    if spec.routes:
        mounts.append({"name": "routes", "mountPath": ROUTES_MOUNT, "readOnly": True})
    if spec.model_catalogue is not None:
        mounts.append({"name": CATALOGUE_VOLUME, "mountPath": CATALOGUE_MOUNT, "readOnly": True})
    return mounts


def shared_volumes(spec: InstanceSpec) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    tls = spec.kafka.tls
    if tls is not None:
        keys = [key for key in (tls.ca_key, tls.cert_key, tls.key_key) if key]
        volumes.append(
            {
                "name": "kafka-tls",
                "secret": {
                    "secretName": tls.name,
                    "defaultMode": 0o440,
                    "items": [{"key": key, "path": key} for key in keys],
                },
            }
        )
    if spec.routes:
        volumes.append(
            {
                "name": "routes",
                "configMap": {
                    "name": config_map_name(spec),
                    "defaultMode": 0o444,
                    "items": [{"key": ROUTES_KEY, "path": ROUTES_KEY}],
                },
            }
        )
    catalogue = spec.model_catalogue
    if catalogue is not None:
        # The user's ConfigMap, or the inline catalogue rendered into the instance's own.
        ref = catalogue.config_map
        name, key = (ref.name, ref.key) if ref else (config_map_name(spec), CATALOGUE_KEY)
        volumes.append(
            {
                "name": CATALOGUE_VOLUME,
                "configMap": {
                    "name": name,
                    "defaultMode": 0o444,
                    "items": [{"key": key, "path": key}],
                },
            }
        )
    return volumes


def default_affinity(selector: Mapping[str, str]) -> dict[str, Any]:
    # Spread replicas over nodes when possible, so one node going down is not an outage.
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": dict(selector)},
                    },
                }
            ]
        }
    }


def pod_spec(
    spec: InstanceSpec,
    *,
    container: Manifest,
    volumes: list[Manifest],
    selector: Mapping[str, str],
    grace_seconds: float,
) -> dict[str, Any]:
    """A pod of the instance (the service's or the gateway's): its container and volumes,
    the shared security context and the instance's placement (affinity, else spread
    by `selector`; node selector, tolerations, pull secrets)."""
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # neither process calls the Kubernetes API
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
        "affinity": copy_json(spec.affinity) if spec.affinity else default_affinity(selector),
    }
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [copy_json(item) for item in spec.tolerations]
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in spec.image_pull_secrets]
    return pod


def pod_annotations(spec: InstanceSpec, config_map: Manifest) -> dict[str, str]:
    """A settings change rolls the pods (env from a ConfigMap is read only at start), and
    so does an edit of a catalogue file in a ConfigMap of the user's (read at start too)."""
    annotations = {CONFIG_HASH_ANNOTATION: config_hash(config_map["data"])}
    catalogue = spec.model_catalogue
    if catalogue and catalogue.config_map and catalogue.config_map.content_hash:
        annotations[CATALOGUE_HASH_ANNOTATION] = catalogue.config_map.content_hash
    return annotations


def render_deployment(spec: InstanceSpec, config_map: Manifest) -> Manifest:
    pod = pod_spec(
        spec,
        container=_container(spec),
        volumes=shared_volumes(spec),
        selector=selector_labels(spec),
        grace_seconds=spec.shutdown_grace_seconds + TERMINATION_MARGIN_SECONDS,
    )
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(spec)},
        "revisionHistoryLimit": 5,
        # One new pod before an old one leaves: capacity holds during a rollout.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": labels(spec), "annotations": pod_annotations(spec, config_map)},
            "spec": pod,
        },
    }
    if not spec.autoscaling.enabled:
        # With an autoscaler, it owns the replica count; applying ours would fight it.
        deployment_spec["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec, spec.owner.name),
        "spec": deployment_spec,
    }


def render_service(spec: InstanceSpec) -> Manifest:
    meta = metadata(spec, child_name(spec.owner.name, "Service"))
    meta["annotations"] = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": "/metrics",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec),
            "ports": [
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def render_pod_disruption_budget(spec: InstanceSpec) -> Manifest:
    # maxUnavailable (not minAvailable) so it never depends on the replica count and
    # never blocks a node drain of a one-replica instance.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(spec, spec.owner.name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(spec)}},
    }


def render_autoscaler(spec: InstanceSpec) -> Manifest | None:
    scaling = spec.autoscaling
    if not scaling.enabled:
        return None
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.owner.name}
    if scaling.provider == "hpa":
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(spec, spec.owner.name),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": scaling.min_replicas,
                "maxReplicas": scaling.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": scaling.cpu_utilization,
                            },
                        },
                    }
                ],
            },
        }
    trigger: dict[str, Any] = {
        "type": "kafka",
        "metadata": {
            "bootstrapServers": spec.bootstrap_server,
            "consumerGroup": spec.consumer_group,
            # No topic: KEDA sums the group's lag over every topic it reads (all routes).
            "lagThreshold": str(scaling.lag_threshold),
            # The service starts new groups at the earliest offset; the scaler must agree.
            "offsetResetPolicy": "earliest",
        },
    }
    if scaling.keda_authentication_ref:
        trigger["authenticationRef"] = {"name": scaling.keda_authentication_ref}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(spec, spec.owner.name),
        "spec": {
            "scaleTargetRef": {"name": spec.owner.name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": [trigger],
        },
    }


SERVICE_KINDS = [
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("keda.sh/v1alpha1", "ScaledObject"),
]
GATEWAY_KINDS = [
    ("apps/v1", "StatefulSet"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
]


def managed_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) of every child kind, including the optional ones."""
    return list(dict.fromkeys(SERVICE_KINDS + GATEWAY_KINDS))


def managed_children(owner_name: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every child an instance may have (pruning, deletion)."""
    service = [(version, kind, child_name(owner_name, kind)) for version, kind in SERVICE_KINDS]
    gateway = [(version, kind, gateway_name(owner_name)) for version, kind in GATEWAY_KINDS]
    return service + gateway


def child_name(owner_name: str, kind: str) -> str:
    """The name each kind of the service's children gets (stable: deletion and pruning rely
    on it); the gateway's are all `gateway_name`."""
    if kind == "ConfigMap":
        return f"{owner_name}-config"
    if kind == "Service":
        return f"{owner_name}-metrics"
    return owner_name


def config_hash(data: Any) -> str:
    encoded = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def copy_json(value: Any) -> Any:
    # Manifests are plain JSON data: a JSON round trip is a deep copy without shared parts.
    return json.loads(json.dumps(value))
