"""The job API's pure parts: app codes, request types, prompts, the status body."""

from __future__ import annotations

import hashlib

import pytest

from chater_gpt.gateway.job_shapes import (
    AppCodes,
    JobApiError,
    core_request,
    parse_submission,
    render_prompt,
    request_type,
    status_body,
)
from chater_gpt.resilience.policy import PolicyBook, RequestType, TenantPolicy
from chater_gpt.storage.jobs import JobView

KIND = RequestType(prompt_template="Summarise: {text}", model="m", max_tokens=9)
BOOK = PolicyBook(
    tenants={
        "shop": TenantPolicy(
            name="Shop",
            app_code_sha256=hashlib.sha256(b"secret-code").hexdigest(),
            request_types={"summarise": KIND},
        ),
        "plain": TenantPolicy(),  # no app code: takes no jobs
    }
)


def test_an_app_is_found_by_its_code_and_only_by_it() -> None:
    apps = AppCodes(BOOK)
    assert len(apps) == 1
    assert apps.identify("secret-code").tenant == "shop"
    for wrong in ("secret-cod", "shop", "plain", ""):
        with pytest.raises(JobApiError) as denied:
            apps.identify(wrong)
        assert (denied.value.status, denied.value.code) == (401, "INVALID_APP_CODE")
        assert "secret" not in denied.value.message


def test_request_types_and_prompts() -> None:
    app = AppCodes(BOOK).identify("secret-code")
    with pytest.raises(JobApiError) as refused:
        request_type(app, "poetry")
    assert (refused.value.status, refused.value.code) == (403, "UNSUPPORTED_REQUEST_TYPE")
    assert render_prompt(KIND, {"text": "a b"}) == "Summarise: a b"
    whole = RequestType(prompt_template="Do: {request}")
    assert render_prompt(whole, "this") == "Do: this"
    for bad_kind, request in (
        (KIND, {"other": 1}),
        (RequestType(prompt_template="{text.__class__}"), {"text": "x"}),
        (RequestType(prompt_template="{0}"), {}),
        (KIND, "not an object"),
    ):
        with pytest.raises(JobApiError) as invalid:
            render_prompt(bad_kind, request)
        assert (invalid.value.status, invalid.value.code) == (400, "INVALID_REQUEST")
    assert core_request(app, KIND, "p", "j") == {
        "message": "p",
        "request_id": "j",
        "app_code": "shop",
        "model": "m",
        "max_tokens": 9,
    }


@pytest.mark.parametrize(
    "body",
    [[], {"app_code": "x"}, {"app_code": "", "request_type": "t", "request": {}}, None],
)
def test_a_bad_submission_is_invalid_request(body: object) -> None:
    with pytest.raises(JobApiError) as invalid:
        parse_submission(body)
    assert invalid.value.code == "INVALID_REQUEST"


def test_status_bodies() -> None:
    record = {"status": "queued", "submitted_ms": 0, "history": [["queued", 0]]}
    queued = status_body("j", JobView(record, 4, 2.0))
    assert (queued["position"], queued["jobs_ahead"], queued["estimated_wait_seconds"]) == (
        5,
        4,
        2.5,
    )
    assert status_body("j", JobView(record, 0, 0.0))["estimated_wait_seconds"] is None
    done = {**record, "status": "completed", "result": {"ai_response": "a"}}
    body = status_body("j", JobView(done, None, 1.0))
    assert body["ai_response"] == "a"
    assert body["status_history"] == [{"status": "queued", "at": "1970-01-01T00:00:00.000+00:00"}]
    expired = status_body("j", JobView({**record, "status": "expired"}, None, 0))
    assert "message" in expired
