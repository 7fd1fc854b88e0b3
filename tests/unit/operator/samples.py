"""ChaterGpt objects shared by the operator's tests."""

from __future__ import annotations

import copy
from typing import Any

# The README's example, exactly as users copy it.
README_EXAMPLE: dict[str, Any] = {
    "apiVersion": "chater.example.com/v1",
    "kind": "ChaterGpt",
    "metadata": {"name": "chater-gpt-instance"},
    "spec": {
        "namespace": "chater-gpt",
        "bootstrapServer": "kafka-service:9092",
        "model": "gpt-4o-mini",
        "visionModel": "gpt-4o-latest",
        "replicas": 3,
    },
}

# Two routes as users write them: every optional field on the first, none on the second.
ROUTES: list[dict[str, Any]] = [
    {
        "name": "gemini",
        "requestTopic": "gemini-send",
        "replyTopic": "gemini-response",
        "shape": "chat",
        "model": "gemini-2.0-flash",
        "systemPrompt": "Answer in one JSON object.",
        "maxTokens": 800,
        "responseFormat": {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
                "strict": True,
            },
        },
    },
    {"name": "photo-eu", "requestTopic": "photo-send-eu", "replyTopic": "photo-response-eu"},
]

# Every field set (HPA autoscaling, SASL + TLS Kafka, Secret-held Redis URL, routes, isDev,
# money limits).
FULL_SPEC: dict[str, Any] = {
    "namespace": "chater",
    "bootstrapServer": "kafka-0:9093,kafka-1:9093",
    "image": "registry.example.com/chater-gpt:1.2.3",
    "imagePullPolicy": "Always",
    "imagePullSecrets": [{"name": "registry-creds"}],
    "replicas": 2,
    "backend": "openai",
    "model": "gpt-4o-mini",
    "visionModel": "gpt-4o",
    "openaiBaseUrl": "https://llm.example.com/v1",
    "apiKeySecretRef": {"name": "llm-keys", "key": "openai"},
    "redisUrlSecretRef": {"name": "redis", "key": "url"},
    "requestTopic": "gpt-send-eu",
    "responseTopic": "gpt-response-eu",
    "consumerGroup": "chater-eu",
    "maxInFlight": 64,
    "requestsPerMinute": 600,
    "dailyTokenLimit": 2_000_000,
    "dailyCostLimitUsd": 40,
    "userDailyCostLimitUsd": 0.75,
    "shutdownGraceSeconds": 40,
    "logLevel": "DEBUG",
    "extraConfig": {"MAX_TOKENS": "800", "SYSTEM_PROMPT": "Be brief."},
    "resources": {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    },
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["llm"]}]}
                ]
            }
        }
    },
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}],
    "autoscaling": {
        "enabled": True,
        "provider": "hpa",
        "minReplicas": 2,
        "maxReplicas": 8,
        "lagThreshold": 50,
        "cpuUtilization": 60,
    },
    "kafkaSecurity": {
        "protocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslSecretRef": {"name": "kafka-user", "usernameKey": "user", "passwordKey": "pass"},
        "tlsSecretRef": {"name": "kafka-tls", "caKey": "ca.crt", "keyPasswordKey": "key-pass"},
    },
    "routes": ROUTES,
    "isDev": True,
}


def cr(
    spec: dict[str, Any],
    *,
    name: str = "chater-gpt-instance",
    namespace: str = "default",
    uid: str = "uid-1",
    generation: int = 1,
) -> dict[str, Any]:
    """A ChaterGpt object as the API server returns it."""
    return {
        "apiVersion": "chater.example.com/v1",
        "kind": "ChaterGpt",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": copy.deepcopy(spec),
    }


# Keys of three providers from one Secret, the OpenAI key from another.
PROVIDER_KEYS: dict[str, Any] = {
    "openai": {"name": "openai-key", "key": "token"},
    "anthropic": {"name": "llm-keys", "key": "ANTHROPIC_API_KEY"},
    "gemini": {"name": "llm-keys", "key": "GEMINI_API_KEY"},
}

# deploy/examples/models.yaml (the service's MODEL_CATALOGUE_FILE example) as the CR's inline
# spec.modelCatalogue.models: the same models, in the CRD's camelCase.
CATALOGUE_MODELS: dict[str, Any] = {
    "gpt-4o-mini": {
        "prices": {"input": 0.12, "output": 0.48, "cachedInput": 0.06},
        "priceChanges": [
            {
                "effective": "2027-07-01",
                "prices": {"input": 0.10, "output": 0.40, "cachedInput": 0.05},
            }
        ],
    },
    "smollm2-135m-instruct": {
        "provider": "openai",
        "contextWindow": 8192,
        "vision": False,
        "prices": {"input": 0, "output": 0},
    },
    "gemini-3.1-pro-preview": {
        "provider": "gemini",
        "contextWindow": 1048576,
        "maxOutput": 65536,
        "prices": {"input": 2.0, "output": 12.0, "cachedInput": 0.2},
        "longContext": {
            "above": 200000,
            "prices": {"input": 4.0, "output": 18.0, "cachedInput": 0.4},
        },
    },
}
