"""Streams of answers as they are generated: what the stages need of them.

A request that asks for a stream (`ChatRequest.stream`) gets one `RequestStream` when its
prompt is built: the backend call sends each text delta to it, and the reply stage ends
it (the whole answer's finish and usage, or the error) before the reply is published, so
a reader of the stream sees its end before the reply. The Kafka side (`kafka.streams`)
publishes them; these are the protocols the stages hold.

A request that asks for a JSON answer is not streamed token by token (its answer is
checked, and may be asked again, before anyone may read it): its stream gets the whole
checked answer as one delta when it ends, as a cached answer's does.
"""

from __future__ import annotations

from typing import Protocol

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatResult
from chater_gpt.errors import ChaterError


class RequestStream(Protocol):
    async def delta(self, text: str) -> None:
        """The next piece of the answer's text."""
        ...


class Streams(Protocol):
    def open(self, request: ChatRequest, job: Job) -> RequestStream:
        """The stream of a request's answer (one per processing of the request)."""
        ...

    def end(
        self, request: ChatRequest, job: Job, result: ChatResult | None, error: ChaterError | None
    ) -> None:
        """The stream's end: the answer (its text, when nothing was streamed yet, then its
        finish and usage) or the error. Ends a stream that was never opened, too."""
        ...

    def discard(self, job: Job) -> None:
        """Forget a stream whose processing was cancelled, without ending it."""
        ...
