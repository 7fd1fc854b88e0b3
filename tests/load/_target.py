"""Where a load run sends its requests and reads the replies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KafkaTarget:
    """A deployment's topics, plus librdkafka properties (security) for both clients."""

    bootstrap: str
    request_topic: str = "gpt-send"
    response_topic: str = "gpt-response"
    client_config: dict[str, str] = field(default_factory=dict)

    def config(self, extra: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        return {"bootstrap.servers": self.bootstrap, **self.client_config, **extra}
