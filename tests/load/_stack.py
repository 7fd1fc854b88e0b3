"""The embedded stack a load run or a benchmark targets when no deployment is named:
the embedded broker (Tansu), the load backend and the consumer under test, each in
a process of its own so the consumer's CPU and memory can be read alone.

The consumer is chater-gpt (`python main.py run`, configured by environment
variables exactly as in production) or the sequential reference of the old design.
The backend speaks OpenAI's API by default, or Anthropic's or Gemini's
(`BackendShape.provider`); chater-gpt is then configured for that provider alone
(`LLM_BACKEND`, its base URL and a fake key, one of its models), with
`PROVIDER_TOKEN_COUNTS` off unless `provider_token_counts` says otherwise.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import orjson

from chater_gpt.config import DEFAULT_OPENAI_BASE_URL
from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.dev.stack import embedded_settings
from tests.load._target import KafkaTarget
from tests.load.load_backend import Provider
from tests.support.service_runner import ROOT, ServiceProcess

LOAD_DIR = Path(__file__).resolve().parent
FAKE_KEY = "sk-load-test-not-a-real-key"
FAKE_ANTHROPIC_KEY = "sk-ant-load-test-not-a-real-key"
FAKE_GEMINI_KEY = "AIza-load-test-not-a-real-key"
# The model each provider's runs ask for (chater_gpt/catalogue/shipped.py).
PROVIDER_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-5-5",
    "gemini": "gemini-3-flash",
}
Consumer = Literal["chater-gpt", "sequential"]
# Shorter than the tests' wait: replies are timed when they arrive.
TANSU_FETCH_WAIT_MS = "2"


@dataclass(frozen=True)
class BackendShape:
    """Arguments of tests/load/load_backend.py."""

    latency: str = "fixed:0.2"
    tokens_per_second: float = 0.0
    answer_tokens: int = 32
    error_rate: float = 0.0
    burst_429: str | None = None
    provider: Provider = "openai"  # the API it speaks
    stream_interval: float = 0.0  # seconds between two words of a streamed answer

    def args(self) -> list[str]:
        args = [
            f"--provider={self.provider}",
            f"--latency={self.latency}",
            f"--tokens-per-second={self.tokens_per_second}",
            f"--answer-tokens={self.answer_tokens}",
            f"--error-rate={self.error_rate}",
        ]
        if self.stream_interval:
            args.append(f"--stream-interval={self.stream_interval}")
        return [*args, f"--burst-429={self.burst_429}"] if self.burst_429 else args


def service_settings(
    bootstrap: str,
    base_url: str,
    overrides: Mapping[str, Any],
    provider: Provider = "openai",
    *,
    provider_token_counts: bool = False,
) -> dict[str, Any]:
    """chater-gpt's settings for a load run: the embedded stack (fetch wait of
    TANSU_FETCH_WAIT_MS), quiet logs, and limits high enough that the service's own
    rate limits never shape the measurement. With another provider than OpenAI, the
    service is configured for that provider alone (OpenAI gets neither a key nor a base
    URL of its own, so it is not a configured provider), and its token-count endpoint
    is off unless `provider_token_counts` (the completion path alone is measured)."""
    load_defaults: dict[str, Any] = {
        "request_topic": "gpt-send",
        "response_topic": "gpt-response",
        "photo_request_topic": "eater-send-photo",
        "photo_response_topic": "photo-analysis-response",
        "consumer_group": "chater-gpt-load",
        "openai_api_key": FAKE_KEY,
        "model": "gpt-4o-mini",
        "vision_model": "gpt-4o",
        "log_level": "WARNING",
        "requests_per_minute": 1_000_000_000,
        "daily_token_limit": 1_000_000_000_000,
    }
    if provider != "openai":
        load_defaults |= provider_settings(provider, base_url, provider_token_counts)
        base_url = DEFAULT_OPENAI_BASE_URL
    return embedded_settings(
        bootstrap=bootstrap,
        llm_base_url=base_url,
        fetch_wait_ms=TANSU_FETCH_WAIT_MS,
        **(load_defaults | dict(overrides)),
    )


def provider_settings(provider: Provider, base_url: str, token_counts: bool) -> dict[str, Any]:
    """LLM_BACKEND=anthropic|gemini against `base_url`, with one of its models."""
    model = PROVIDER_MODELS[provider]
    settings: dict[str, Any] = {
        "llm_backend": provider,
        "openai_api_key": None,
        "model": model,
        "vision_model": model,
        "provider_token_counts": token_counts,
        # The default maps GPT models to larger GPT models, which no provider here serves.
        "context_fallback_models": "",
    }
    if provider == "anthropic":
        return settings | {"anthropic_base_url": base_url, "anthropic_api_key": FAKE_ANTHROPIC_KEY}
    return settings | {"gemini_base_url": base_url, "gemini_api_key": FAKE_GEMINI_KEY}


class ChildError(RuntimeError):
    """A process of the stack exited or never became ready; the message has its log."""


def _log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class BackendProcess:
    """tests/load/load_backend.py in a child process."""

    def __init__(self, shape: BackendShape, workdir: Path) -> None:
        self._shape = shape
        self._port_file = workdir / "backend.port"
        self._stats_file = workdir / "backend.stats.json"
        self.log_path = workdir / "backend.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What the provider's client takes: OpenAI's includes /v1, the SDKs of
        Anthropic and Gemini add the version themselves."""
        root = f"http://127.0.0.1:{self.port}"
        return f"{root}/v1" if self._shape.provider == "openai" else root

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the load backend is not running"
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> BackendProcess:
        # A port file left by an earlier run in the same directory would name a dead port.
        self._port_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    str(LOAD_DIR / "load_backend.py"),
                    *self._shape.args(),
                    f"--port-file={self._port_file}",
                    f"--stats-file={self._stats_file}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self._port_file.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise ChildError(f"the load backend did not start:\n{_log_tail(self.log_path)}")
            time.sleep(0.05)  # a file appearing has no event to await across processes
        self.port = int(self._port_file.read_text())
        return self

    def stop(self) -> dict[str, int]:
        """Stop it; its call count and peak concurrency (empty when unknown)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return {}
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if not self._stats_file.exists():
            return {}
        stats: dict[str, int] = orjson.loads(self._stats_file.read_bytes())
        return stats


class SequentialProcess:
    """tests/load/sequential_reference.py in a child process (the old design)."""

    def __init__(self, settings: Mapping[str, Any], log_path: Path) -> None:
        self._settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SequentialProcess:
        s = self._settings
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(LOAD_DIR / "sequential_reference.py"),
                    f"--bootstrap={s['bootstrap_server']}",
                    f"--request-topic={s['request_topic']}",
                    f"--response-topic={s['response_topic']}",
                    f"--group={s['consumer_group']}",
                    f"--base-url={s['openai_base_url']}",
                    f"--model={s['model']}",
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class EmbeddedStack:
    """Broker + load backend + the consumer under test; a context manager that always
    stops all three. The logs stay in `workdir` (a fresh temporary directory by default)."""

    def __init__(
        self,
        *,
        backend: BackendShape | None = None,
        consumer: Consumer = "chater-gpt",
        settings: Mapping[str, Any] | None = None,
        partitions: int = 3,
        workdir: Path | None = None,
        provider_token_counts: bool = False,
    ) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chater-load-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._shape = backend or BackendShape()
        self._consumer_kind = consumer
        self._overrides = dict(settings or {})
        self._partitions = partitions
        self._token_counts = provider_token_counts
        self._exit = contextlib.ExitStack()
        self._backend: BackendProcess | None = None
        self.backend_stats: dict[str, int] = {}
        self.settings: dict[str, Any] = {}
        self._child: ServiceProcess | SequentialProcess | None = None

    @property
    def target(self) -> KafkaTarget:
        return KafkaTarget(
            self.settings["bootstrap_server"],
            self.settings["request_topic"],
            self.settings["response_topic"],
            photo_request_topic=self.settings["photo_request_topic"],
            photo_response_topic=self.settings["photo_response_topic"],
        )

    @property
    def consumer_log(self) -> Path:
        return self.workdir / f"{self._consumer_kind}.log"

    @property
    def consumer_pid(self) -> int:
        proc = self._child.proc if self._child is not None else None
        assert proc is not None, "the stack is not running"
        return proc.pid

    @property
    def backend_pid(self) -> int:
        assert self._backend is not None, "the stack is not running"
        return self._backend.pid

    def check_alive(self) -> None:
        """Raise with the consumer's log when its process has exited."""
        proc = self._child.proc if self._child is not None else None
        if proc is not None and proc.poll() is not None:
            raise ChildError(
                f"{self._consumer_kind} exited with code {proc.returncode}:\n"
                f"{_log_tail(self.consumer_log)}"
            )

    def __enter__(self) -> EmbeddedStack:
        try:
            broker = self._exit.enter_context(EmbeddedBroker(log_path=self.workdir / "broker.log"))
            backend = self._backend = BackendProcess(self._shape, self.workdir).start()
            self._exit.callback(self._stop_backend, backend)
            self.settings = service_settings(
                broker.bootstrap,
                backend.base_url,
                self._overrides,
                self._shape.provider,
                provider_token_counts=self._token_counts,
            )
            topics = [
                self.settings[name]
                for name in (
                    "request_topic",
                    "response_topic",
                    "photo_request_topic",
                    "photo_response_topic",
                )
            ]
            # An empty photo request topic turns the photo route off (PHOTO_REQUEST_TOPIC="").
            if not self.settings["photo_request_topic"]:
                topics = topics[:2]
            broker.create_topics(topics, partitions=self._partitions)
            child: ServiceProcess | SequentialProcess
            if self._consumer_kind == "chater-gpt":
                child = ServiceProcess(self.settings, self.consumer_log)
            else:
                child = SequentialProcess(self.settings, self.consumer_log)
            self._child = child.start()
            self._exit.callback(self._stop_child, child)
        except BaseException:
            self._exit.close()
            raise
        return self

    def _stop_backend(self, backend: BackendProcess) -> None:
        self.backend_stats = backend.stop()

    @staticmethod
    def _stop_child(child: ServiceProcess | SequentialProcess) -> None:
        if isinstance(child, ServiceProcess) and child.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.terminate(15)  # SIGTERM: drain and leave the group, as in production
        child.stop()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit.close()
