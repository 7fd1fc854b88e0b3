"""The operator's handlers against an in-process Kubernetes API (kmock's emulator).

The handler functions are called directly, as kopf calls them, with the real
HTTP client pointed at the mock: create, update, drift, missing Secret and
deletion are each one deterministic pass, no sleeping and no timers to wait for.
kmock keeps objects as plain JSON and merges patches; the subclass below adds
what server-side apply means for these tests (apply creates a missing object
and replaces what the manager applied before).
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import kopf
import pytest
import yaml

# The operator ships as its own package under operator/ (see tests/unit/operator/conftest.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "operator"))

from chater_operator import handlers
from chater_operator.client import Connection, HttpKubeApi
from chater_operator.reconcile import Reconciler

from tests.unit.operator.samples import README_EXAMPLE, ROUTES, cr

pytestmark = pytest.mark.integration

CHATERGPTS = kmock.resource("chater.example.com", "v1", "chatergpts")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
SERVICES = kmock.resource("", "v1", "services")
PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
STATEFULSETS = kmock.resource("apps", "v1", "statefulsets")
SECRETS = kmock.resource("", "v1", "secrets")
NAME = "chater-gpt-instance"
CONFIG_HASH = "chater.example.com/config-hash"
CATALOGUE_HASH = "chater.example.com/catalogue-hash"
CHILDREN = [
    (CONFIGMAPS, f"{NAME}-config"),
    (DEPLOYMENTS, NAME),
    (SERVICES, f"{NAME}-metrics"),
    (PDBS, NAME),
]


class ApplyingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus server-side apply: create when missing, replace the applied spec."""

    async def _handle(self, request: Any) -> Any:
        try:
            return await self._apply_or_handle(request)
        finally:
            async with self.handled:
                self.handled.notify_all()

    async def _apply_or_handle(self, request: Any) -> Any:
        content_type = request.headers.get("Content-Type", "")
        if request.action == kmock.action.UPDATE and "apply-patch" in content_type:
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                self.objects[key] = request.data
                return aiohttp.web.json_response(request.data, status=201)
            for field in ("spec", "data"):
                if field in request.data:
                    self.objects[key].patch({field: None})
        return await super()._handle(request)

    @property
    def handled(self) -> asyncio.Condition:
        """Notified after every request: tests await a state instead of sleeping."""
        condition: asyncio.Condition | None = getattr(self, "_handled", None)
        if condition is None:
            condition = self._handled = asyncio.Condition()
        return condition

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        async with self.handled:
            await asyncio.wait_for(self.handled.wait_for(predicate), timeout)


class RecordedEvents:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def emit(self, body: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.items.append((type, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.items]


@pytest.fixture
async def api_mock() -> AsyncIterator[Any]:
    async with ApplyingEmulator() as mock, kmock.Server(mock):
        yield mock


@pytest.fixture
async def client(api_mock: Any) -> AsyncIterator[HttpKubeApi]:
    url = str(api_mock.url)

    async def login() -> Connection:
        return Connection(server=url)

    async with HttpKubeApi(login, timeout=10) as api:
        yield api


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()


@pytest.fixture
def memo(client: HttpKubeApi, events: RecordedEvents) -> kopf.Memo:
    clock = iter(datetime(2026, 1, 1, 0, minute, tzinfo=UTC) for minute in range(60))
    return kopf.Memo(reconciler=Reconciler(api=client, events=events, clock=lambda: next(clock)))


def put_cr(mock: Any, spec: dict[str, Any], namespace: str, generation: int = 1) -> None:
    body = cr(spec, name=NAME, namespace=namespace, uid="uid-1", generation=generation)
    key = (CHATERGPTS, namespace, NAME)
    if key in mock.objects and not mock.objects[key].deleted:
        mock.objects[key].patch({"spec": None})
        mock.objects[key].patch({"spec": body["spec"], "metadata": body["metadata"]})
    else:
        mock.objects[key] = body


def body_of(mock: Any, namespace: str) -> kopf.Body:
    """The ChaterGpt as kopf would hand it to a handler: the stored state, status included."""
    return kopf.Body(copy.deepcopy(mock.objects[CHATERGPTS, namespace, NAME].raw))


def put_secret(mock: Any, namespace: str, name: str = f"{NAME}-api-key") -> None:
    mock.objects[SECRETS, namespace, name] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"OPENAI_API_KEY": "c2stdGVzdA=="},
    }


def live(mock: Any, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
    key = (resource, namespace, name)
    if key not in mock.objects or mock.objects[key].deleted:
        return None
    raw: dict[str, Any] = mock.objects[key].raw
    return raw


def writes_since(mock: Any, start: int) -> list[str]:
    """Method and path of every write the operator sent after request number `start`."""
    return [
        f"{request.method.value} {request.url.path}"
        for request in list(mock)[start:]
        if request.method.value in ("POST", "PATCH", "PUT", "DELETE")
    ]


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


async def create_readme_instance(mock: Any, memo: kopf.Memo) -> None:
    put_cr(mock, README_EXAMPLE["spec"], namespace="chater-gpt")
    put_secret(mock, "chater-gpt")
    await handlers.on_change(body=body_of(mock, "chater-gpt"), memo=memo)


async def test_create_applies_children_with_owner_references_and_sets_status(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    await create_readme_instance(api_mock, memo)

    for resource, name in CHILDREN:
        child = live(api_mock, resource, "chater-gpt", name)
        assert child is not None, name
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ChaterGpt", NAME, "uid-1")
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3

    applies = [r for r in api_mock if r.method.value == "PATCH" and "/status" not in r.url.path]
    assert len(applies) == 4
    for request in applies:  # server-side apply as the operator's field manager
        assert request.headers["Content-Type"] == "application/apply-patch+yaml"
        assert request.params == {"fieldManager": "chater-operator", "force": "true"}

    status = body_of(api_mock, "chater-gpt")["status"]
    assert status["observedGeneration"] == 1
    assert status["readyReplicas"] == 0
    assert condition(status, "Degraded")["status"] == "False"
    assert condition(status, "Ready")["reason"] == "WaitingForReplicas"
    assert condition(status, "Progressing")["status"] == "True"
    assert condition(status, "Ready")["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert events.reasons() == ["Applied"]


async def test_a_steady_instance_is_not_written_again(api_mock: Any, memo: kopf.Memo) -> None:
    await create_readme_instance(api_mock, memo)
    start = len(list(api_mock))

    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)

    assert writes_since(api_mock, start) == []  # no blind patches, not even of the status


async def test_replicas_3_to_5_patches_only_the_deployment(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    await create_readme_instance(api_mock, memo)
    start = len(list(api_mock))

    put_cr(api_mock, {**README_EXAMPLE["spec"], "replicas": 5}, "chater-gpt", generation=2)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)

    assert writes_since(api_mock, start) == [
        f"PATCH /apis/apps/v1/namespaces/chater-gpt/deployments/{NAME}",
        f"PATCH /apis/chater.example.com/v1/namespaces/chater-gpt/chatergpts/{NAME}/status",
    ]
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 5
    assert body_of(api_mock, "chater-gpt")["status"]["observedGeneration"] == 2
    assert events.items[-1][2] == f"applied Deployment/{NAME} (changed)"


async def test_create_with_routes_mounts_the_routes_file_and_a_routes_change_rolls_the_pods(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    spec = {**README_EXAMPLE["spec"], "routes": ROUTES, "isDev": True}
    put_cr(api_mock, spec, namespace="chater-gpt")
    put_secret(api_mock, "chater-gpt")
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)

    config_map = live(api_mock, CONFIGMAPS, "chater-gpt", f"{NAME}-config")
    assert config_map is not None
    data = config_map["data"]
    routes = json.loads(data["routes.json"])["routes"]
    assert [(r["name"], r["request_topic"], r["reply_topic"]) for r in routes] == [
        ("gemini", "gemini-send", "gemini-response"),
        ("photo-eu", "photo-send-eu", "photo-response-eu"),
    ]
    assert data["ROUTES_FILE"] == "/etc/chater-gpt/routes/routes.json"
    assert data["IS_DEV"] == "true"
    assert data["REDIS_KEY_PREFIX"] == f"chater:chater-gpt:{NAME}:"
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    template = deployment["spec"]["template"]
    (mount,) = [
        m for m in template["spec"]["containers"][0]["volumeMounts"] if m["name"] == "routes"
    ]
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/chater-gpt/routes", True)
    assert condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")["status"] == "False"
    hash_before = template["metadata"]["annotations"]["chater.example.com/config-hash"]

    # One route less: the ConfigMap and the pod template change, so the pods roll.
    start = len(list(api_mock))
    put_cr(api_mock, {**spec, "routes": ROUTES[:1]}, "chater-gpt", generation=2)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)

    assert writes_since(api_mock, start) == [
        f"PATCH /api/v1/namespaces/chater-gpt/configmaps/{NAME}-config",
        f"PATCH /apis/apps/v1/namespaces/chater-gpt/deployments/{NAME}",
        f"PATCH /apis/chater.example.com/v1/namespaces/chater-gpt/chatergpts/{NAME}/status",
    ]
    config_map = live(api_mock, CONFIGMAPS, "chater-gpt", f"{NAME}-config")
    assert config_map is not None
    assert [r["name"] for r in json.loads(config_map["data"]["routes.json"])["routes"]] == [
        "gemini"
    ]
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["chater.example.com/config-hash"] != hash_before

    # Routes removed: no routes file, no mount, no ROUTES_FILE.
    put_cr(api_mock, README_EXAMPLE["spec"], "chater-gpt", generation=3)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    config_map = live(api_mock, CONFIGMAPS, "chater-gpt", f"{NAME}-config")
    assert config_map is not None
    assert not {"routes.json", "ROUTES_FILE", "IS_DEV"} & set(config_map["data"])
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    mounts = deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert [m["name"] for m in mounts] == ["tmp"]


async def test_the_timer_restores_a_deleted_or_edited_deployment(
    api_mock: Any, client: HttpKubeApi, memo: kopf.Memo, events: RecordedEvents
) -> None:
    await create_readme_instance(api_mock, memo)
    deployment_path = f"/apis/apps/v1/namespaces/chater-gpt/deployments/{NAME}"

    async with api_mock.delete(deployment_path) as response:  # someone deletes it
        assert response.status == 200
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is None
    start = len(list(api_mock))
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    restored = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert restored is not None
    assert restored["spec"]["replicas"] == 3
    assert writes_since(api_mock, start) == [f"PATCH {deployment_path}"]
    assert events.items[-1] == ("Normal", "DriftCorrected", f"applied Deployment/{NAME} (missing)")

    api_mock.objects[DEPLOYMENTS, "chater-gpt", NAME].patch({"spec": {"replicas": 1}})
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    edited_back = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert edited_back is not None
    assert edited_back["spec"]["replicas"] == 3
    assert events.items[-1][2] == f"applied Deployment/{NAME} (edited)"


async def test_a_missing_secret_is_a_degraded_condition_until_it_exists(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    put_cr(api_mock, README_EXAMPLE["spec"], namespace="chater-gpt")

    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)  # does not raise

    assert all(live(api_mock, res, "chater-gpt", name) is None for res, name in CHILDREN)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "SecretNotFound"
    assert f"{NAME}-api-key" in degraded["message"]
    assert events.items == [("Warning", "SecretNotFound", degraded["message"])]

    # The next timer pass does not repeat the warning ...
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert len(events.items) == 1
    # ... and, once the Secret exists, starts the instance.
    put_secret(api_mock, "chater-gpt")
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is not None
    status = body_of(api_mock, "chater-gpt")["status"]
    assert condition(status, "Degraded")["status"] == "False"
    assert events.reasons()[-2:] == ["Applied", "Recovered"]

    # A Secret deleted later: Degraded again, the running Deployment is left alone.
    del api_mock.objects[SECRETS, "chater-gpt", f"{NAME}-api-key"]
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    status = body_of(api_mock, "chater-gpt")["status"]
    assert condition(status, "Degraded")["reason"] == "SecretNotFound"
    assert condition(status, "Ready")["reason"] == "WaitingForReplicas"  # still watched
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is not None


def put_config_map(mock: Any, namespace: str, name: str, data: dict[str, str]) -> None:
    mock.objects[CONFIGMAPS, namespace, name] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


async def test_a_catalogue_config_map_must_exist_with_its_key_before_the_pods_mount_it(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    ref = {"name": "llm-models", "key": "models.yaml"}
    put_cr(
        api_mock, {**README_EXAMPLE["spec"], "modelCatalogue": {"configMapRef": ref}}, "chater-gpt"
    )
    put_secret(api_mock, "chater-gpt")

    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)

    assert all(live(api_mock, res, "chater-gpt", name) is None for res, name in CHILDREN)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ConfigMapNotFound")
    assert degraded["message"].startswith("ConfigMap llm-models not found in namespace chater-gpt")
    assert events.items == [("Warning", "ConfigMapNotFound", degraded["message"])]

    # There, but without the key the pods would mount: still waiting, the message says why.
    put_config_map(api_mock, "chater-gpt", "llm-models", {"models.json": "{}"})
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert degraded["reason"] == "ConfigMapNotFound"
    assert "has no key models.yaml" in degraded["message"]
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is None

    put_config_map(api_mock, "chater-gpt", "llm-models", {"models.yaml": "models: {}\n"})
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")["status"] == "False"
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "model-catalogue"]
    assert volume["configMap"]["name"] == "llm-models"
    config_map = live(api_mock, CONFIGMAPS, "chater-gpt", f"{NAME}-config")
    assert config_map is not None
    assert config_map["data"]["MODEL_CATALOGUE_FILE"] == "/etc/chater-gpt/catalogue/models.yaml"
    # The user's ConfigMap is read, never written.
    assert live(api_mock, CONFIGMAPS, "chater-gpt", "llm-models") == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "llm-models", "namespace": "chater-gpt"},
        "data": {"models.yaml": "models: {}\n"},
    }


async def test_an_edit_of_the_catalogue_config_map_rolls_the_pods(
    api_mock: Any, memo: kopf.Memo
) -> None:
    """The pods read the catalogue file only when they start: the operator follows the
    key's content (on its next pass: a change or the drift timer) into the pod template."""
    ref = {"name": "llm-models", "key": "models.yaml"}
    spec = {
        **README_EXAMPLE["spec"],
        "modelCatalogue": {"configMapRef": ref},
        "gateway": {"enabled": True},  # its pods read the catalogue too
    }
    put_cr(api_mock, spec, "chater-gpt")
    put_secret(api_mock, "chater-gpt")
    put_config_map(api_mock, "chater-gpt", "llm-models", {"models.yaml": "models: {}\n"})

    def template_annotations() -> dict[str, str]:
        deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
        gateway = live(api_mock, STATEFULSETS, "chater-gpt", f"{NAME}-gateway")
        assert deployment is not None
        assert gateway is not None
        annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        assert gateway["spec"]["template"]["metadata"]["annotations"] == annotations
        return annotations

    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    first = template_annotations()
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert template_annotations() == first  # the same file: no rollout

    edited = "models:\n  gpt-4o-mini: {prices: {input: 0.1, output: 0.4}}\n"
    put_config_map(api_mock, "chater-gpt", "llm-models", {"models.yaml": edited, "other": "x"})
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    second = template_annotations()
    assert second[CATALOGUE_HASH] != first[CATALOGUE_HASH]  # a new template: pods roll
    assert second[CONFIG_HASH] == first[CONFIG_HASH]  # the settings did not change

    # Another key of the same ConfigMap is not the catalogue: no rollout for it.
    put_config_map(api_mock, "chater-gpt", "llm-models", {"models.yaml": edited, "other": "y"})
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert template_annotations() == second


async def test_the_instances_own_config_map_is_no_catalogue_config_map(
    api_mock: Any, memo: kopf.Memo
) -> None:
    ref = {"name": f"{NAME}-config", "key": "models.json"}
    put_cr(
        api_mock, {**README_EXAMPLE["spec"], "modelCatalogue": {"configMapRef": ref}}, "chater-gpt"
    )
    put_secret(api_mock, "chater-gpt")
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert "spec.modelCatalogue.models" in degraded["message"]


async def test_an_inline_catalogue_and_provider_keys_reach_the_pods(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    spec = {
        **README_EXAMPLE["spec"],
        "providerKeys": {
            "anthropic": {"name": "llm-keys", "key": "ANTHROPIC_API_KEY"},
            "gemini": {"name": "llm-keys", "key": "GEMINI_API_KEY"},
        },
        "modelCatalogue": {"models": {"claude-haiku-4-5": {"prices": {"input": 1, "output": 5}}}},
        "dailyCostLimitUsd": 20,
    }
    put_cr(api_mock, spec, "chater-gpt")
    put_secret(api_mock, "chater-gpt")

    # The providers' Secret is missing: named, nothing applied.
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert degraded["reason"] == "SecretNotFound"
    assert degraded["message"].startswith("Secret llm-keys not found")
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is None

    put_secret(api_mock, "chater-gpt", "llm-keys")
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")["status"] == "False"
    config_map = live(api_mock, CONFIGMAPS, "chater-gpt", f"{NAME}-config")
    assert config_map is not None
    data = config_map["data"]
    assert json.loads(data["models.json"]) == {
        "models": {"claude-haiku-4-5": {"prices": {"input": 1, "output": 5}}}
    }
    assert data["MODEL_CATALOGUE_FILE"] == "/etc/chater-gpt/catalogue/models.json"
    assert data["DAILY_COST_LIMIT_USD"] == "20"
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {item["name"]: item["valueFrom"]["secretKeyRef"] for item in main["env"]} == {
        "OPENAI_API_KEY": {"name": f"{NAME}-api-key", "key": "OPENAI_API_KEY"},
        "ANTHROPIC_API_KEY": {"name": "llm-keys", "key": "ANTHROPIC_API_KEY"},
        "GEMINI_API_KEY": {"name": "llm-keys", "key": "GEMINI_API_KEY"},
    }
    assert events.reasons()[-2:] == ["Applied", "Recovered"]


async def test_ready_follows_the_deployment(api_mock: Any, memo: kopf.Memo) -> None:
    await create_readme_instance(api_mock, memo)
    api_mock.objects[DEPLOYMENTS, "chater-gpt", NAME].patch(
        {
            "metadata": {"generation": 1},
            "status": {
                "observedGeneration": 1,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
            },
        }
    )
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)

    status = body_of(api_mock, "chater-gpt")["status"]
    assert status["readyReplicas"] == 3
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Progressing")["reason"] == "RolledOut"


async def test_switching_autoscaling_off_deletes_the_autoscaler(
    api_mock: Any, memo: kopf.Memo
) -> None:
    scaled = {**README_EXAMPLE["spec"], "autoscaling": {"enabled": True, "provider": "hpa"}}
    put_cr(api_mock, scaled, "chater-gpt")
    put_secret(api_mock, "chater-gpt")
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert live(api_mock, HPAS, "chater-gpt", NAME) is not None

    put_cr(api_mock, README_EXAMPLE["spec"], "chater-gpt", generation=2)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert live(api_mock, HPAS, "chater-gpt", NAME) is None
    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 3


async def test_the_gateway_comes_with_its_keys_reports_its_pods_and_goes_when_disabled(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    keys = {"name": "gw-keys", "key": "keys.yaml"}
    spec = {**README_EXAMPLE["spec"], "gateway": {"enabled": True, "apiKeysSecret": keys}}
    gateway = [
        (STATEFULSETS, f"{NAME}-gateway"),
        (SERVICES, f"{NAME}-gateway"),
        (PDBS, f"{NAME}-gateway"),
    ]
    put_cr(api_mock, spec, "chater-gpt")
    put_secret(api_mock, "chater-gpt")

    # Its keys Secret is missing: nothing applied (the pods would wait for it).
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    degraded = condition(body_of(api_mock, "chater-gpt")["status"], "Degraded")
    assert degraded["message"].startswith("Secret gw-keys not found")

    put_secret(api_mock, "chater-gpt", "gw-keys")
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    for resource, name in [*CHILDREN, *gateway]:
        child = live(api_mock, resource, "chater-gpt", name)
        assert child is not None, name
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == "uid-1"
    status = body_of(api_mock, "chater-gpt")["status"]
    assert status["gateway"] == {"replicas": 2, "readyReplicas": 0}

    # Its pods become ready: reported on the next pass, nothing re-applied.
    api_mock.objects[STATEFULSETS, "chater-gpt", f"{NAME}-gateway"].patch(
        {"status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}}
    )
    start = len(list(api_mock))
    await handlers.drift_timer(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert body_of(api_mock, "chater-gpt")["status"]["gateway"]["readyReplicas"] == 2
    assert writes_since(api_mock, start) == [
        f"PATCH /apis/chater.example.com/v1/namespaces/chater-gpt/chatergpts/{NAME}/status"
    ]

    # Disabled: the gateway's children and its status go, the service's stay untouched.
    start = len(list(api_mock))
    put_cr(api_mock, {**spec, "gateway": {"enabled": False}}, "chater-gpt", generation=2)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert all(live(api_mock, res, "chater-gpt", name) is None for res, name in gateway)
    assert all(live(api_mock, res, "chater-gpt", name) is not None for res, name in CHILDREN)
    assert "gateway" not in body_of(api_mock, "chater-gpt")["status"]
    assert not [w for w in writes_since(api_mock, start) if "/deployments/" in w]
    assert events.reasons()[-1] == "Pruned"


async def test_the_gateways_autoscaler_comes_and_goes_with_its_setting(
    api_mock: Any, memo: kopf.Memo
) -> None:
    scaling = {"enabled": True, "minReplicas": 2, "maxReplicas": 5}
    spec = {**README_EXAMPLE["spec"], "gateway": {"enabled": True, "autoscaling": scaling}}
    put_cr(api_mock, spec, "chater-gpt")
    put_secret(api_mock, "chater-gpt")
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    hpa = live(api_mock, HPAS, "chater-gpt", f"{NAME}-gateway")
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpa["spec"]["maxReplicas"] == 5
    assert live(api_mock, HPAS, "chater-gpt", NAME) is None  # the service is not autoscaled

    off = {**spec, "gateway": {"enabled": True}}
    put_cr(api_mock, off, "chater-gpt", generation=2)
    await handlers.on_change(body=body_of(api_mock, "chater-gpt"), memo=memo)
    assert live(api_mock, HPAS, "chater-gpt", f"{NAME}-gateway") is None
    stateful_set = live(api_mock, STATEFULSETS, "chater-gpt", f"{NAME}-gateway")
    assert stateful_set is not None
    assert stateful_set["spec"]["replicas"] == 2


async def test_deletion_removes_the_children_in_another_namespace(
    api_mock: Any, memo: kopf.Memo, events: RecordedEvents
) -> None:
    # The README's CR lives in "default"; its children in spec.namespace "chater-gpt".
    put_cr(api_mock, README_EXAMPLE["spec"], namespace="default")
    put_secret(api_mock, "chater-gpt")
    unrelated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}
    api_mock.objects[CONFIGMAPS, "chater-gpt", "other"] = unrelated
    await handlers.on_change(body=body_of(api_mock, "default"), memo=memo)
    for resource, name in CHILDREN:
        child = live(api_mock, resource, "chater-gpt", name)
        assert child is not None
        assert "ownerReferences" not in child["metadata"]  # cannot cross namespaces

    await handlers.on_delete(body=body_of(api_mock, "default"), memo=memo)

    assert all(live(api_mock, res, "chater-gpt", name) is None for res, name in CHILDREN)
    assert live(api_mock, CONFIGMAPS, "chater-gpt", "other") is not None
    assert events.reasons()[-1] == "Deleted"


async def test_a_child_of_another_chatergpt_is_left_alone(api_mock: Any, memo: kopf.Memo) -> None:
    put_cr(api_mock, README_EXAMPLE["spec"], namespace="default")
    put_secret(api_mock, "chater-gpt")
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": NAME,
            "namespace": "chater-gpt",
            "labels": {"chater.example.com/owner-uid": "someone-else"},
        },
        "spec": {"replicas": 7},
    }
    api_mock.objects[DEPLOYMENTS, "chater-gpt", NAME] = foreign

    await handlers.on_change(body=body_of(api_mock, "default"), memo=memo)

    deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 7
    degraded = condition(body_of(api_mock, "default")["status"], "Degraded")
    assert degraded["reason"] == "ChildConflict"
    await handlers.on_delete(body=body_of(api_mock, "default"), memo=memo)
    assert live(api_mock, DEPLOYMENTS, "chater-gpt", NAME) is not None


@pytest.mark.slow  # kopf takes a few seconds to stop its watchers
async def test_kopf_runs_the_operator_against_the_api(
    api_mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real kopf machinery (discovery, watch, finalizer, handlers) drives a create."""
    url = str(api_mock.url)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mock", "cluster": {"server": url}}],
        "users": [{"name": "mock", "user": {"token": "test-token"}}],
        "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "mock"}}],
        "current-context": "mock",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    api_mock.resources["chater.example.com/v1/chatergpts"] = kmock.ResourceInfo(
        kind="ChaterGpt",
        singular="chatergpt",
        namespaced=True,
        verbs={"get", "list", "watch", "patch"},
        subresources={"status"},
    )
    # kopf's backbone: it watches CRDs (for new resources) and namespaces.
    for backbone in ("apiextensions.k8s.io/v1/customresourcedefinitions", "v1/namespaces"):
        api_mock.resources[backbone] = kmock.ResourceInfo(
            namespaced=False, verbs={"get", "list", "watch"}
        )
    put_cr(api_mock, README_EXAMPLE["spec"], namespace="default")
    put_secret(api_mock, "chater-gpt")

    def reconciled() -> bool:
        chatergpt = live(api_mock, CHATERGPTS, "default", NAME) or {}
        deployment = live(api_mock, DEPLOYMENTS, "chater-gpt", NAME)
        return deployment is not None and "conditions" in chatergpt.get("status", {})

    stop = asyncio.Event()
    operator = asyncio.create_task(
        kopf.operator(standalone=True, clusterwide=True, stop_flag=stop, memo=kopf.Memo())
    )
    try:
        await api_mock.wait_until(reconciled)
    finally:
        stop.set()
        await asyncio.wait_for(operator, timeout=30)

    cr_now = live(api_mock, CHATERGPTS, "default", NAME)
    assert cr_now is not None
    assert "chater.example.com/finalizer" in cr_now["metadata"]["finalizers"]
    assert condition(cr_now["status"], "Degraded")["status"] == "False"
