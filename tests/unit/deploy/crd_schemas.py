"""JSON Schemas for the custom resources in deploy/k8s, which kubernetes-validate does not
know (it raises SchemaNotFoundError for them).

Written from the KEDA and Prometheus Operator CRDs, narrowed to what the API server would
reject (required fields, types, trigger metadata as strings, duration syntax) plus unknown
fields, so a typo fails here instead of at `kubectl apply`.
"""

from __future__ import annotations

from typing import Any

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "namespace": _NAME,
        "labels": _LABELS,
        "annotations": _LABELS,
    },
    "additionalProperties": False,
}
_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}

_SCALING_RULES = {
    "type": "object",
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "value", "periodSeconds"],
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {"type": "integer", "minimum": 1},
                    "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

# KEDA reads every trigger metadata value as a string: an unquoted `false` or `50` is
# rejected by its CRD.
_KAFKA_TRIGGER_METADATA = {
    "type": "object",
    "required": ["bootstrapServers", "consumerGroup", "lagThreshold"],
    "properties": {
        "lagThreshold": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "activationLagThreshold": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "offsetResetPolicy": {"enum": ["earliest", "latest"]},
        "allowIdleConsumers": {"enum": ["true", "false"]},
        "scaleToZeroOnInvalidOffset": {"enum": ["true", "false"]},
    },
}

SCALED_OBJECT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": _NAME,
                        "envSourceContainerName": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "scalingModifiers": {"type": "object"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "properties": {
                                "name": _NAME,
                                "behavior": {
                                    "type": "object",
                                    "properties": {
                                        "scaleUp": _SCALING_RULES,
                                        "scaleDown": _SCALING_RULES,
                                    },
                                    "additionalProperties": False,
                                },
                            },
                            "additionalProperties": False,
                        },
                    },
                    "additionalProperties": False,
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": _NAME,
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "additionalProperties": False,
                            },
                        },
                        "additionalProperties": False,
                        "if": {"properties": {"type": {"const": "kafka"}}},
                        "then": {"properties": {"metadata": _KAFKA_TRIGGER_METADATA}},
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

# Prometheus durations as the Prometheus Operator's CRD accepts them ("30s", "1m30s").
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_ENDPOINT_FIELDS = {
    "port": {"type": "string", "minLength": 1},
    "targetPort": {"type": ["string", "integer"]},
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    "interval": _DURATION,
    "scrapeTimeout": _DURATION,
    "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"},
    "params": {"type": "object"},
    "relabelings": {"type": "array"},
    "metricRelabelings": {"type": "array"},
    "tlsConfig": {"type": "object"},
    "authorization": {"type": "object"},
    "basicAuth": {"type": "object"},
    "oauth2": {"type": "object"},
    "bearerTokenSecret": {"type": "object"},
    "followRedirects": {"type": "boolean"},
    "enableHttp2": {"type": "boolean"},
    "filterRunning": {"type": "boolean"},
    "proxyUrl": {"type": "string"},
}

SERVICE_MONITOR: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": _LABELS,
                        "matchExpressions": {"type": "array"},
                    },
                    "additionalProperties": False,
                },
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": _INT32,
                "targetLimit": _INT32,
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": _ENDPOINT_FIELDS,
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

# (apiVersion, kind) -> schema, for the kinds kubernetes-validate has no schema for.
CUSTOM_RESOURCE_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
}
