"""Where a load run sends its requests and reads the replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KafkaTarget:
    """A deployment's topics, plus librdkafka properties (security) for both clients.
    The photo topics (the photo-analysis route) are used only by photo payloads."""

    bootstrap: str
    request_topic: str = "gpt-send"
    response_topic: str = "gpt-response"
    client_config: dict[str, str] = field(default_factory=dict)
    photo_request_topic: str = "eater-send-photo"
    photo_response_topic: str = "photo-analysis-response"

    def config(self, extra: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        return {"bootstrap.servers": self.bootstrap, **self.client_config, **extra}

    def response_topics(self, photos: bool) -> list[str]:
        """The reply topics a run reads: the chat one, plus the photo one for photos."""
        return [self.response_topic, self.photo_response_topic] if photos else [self.response_topic]
