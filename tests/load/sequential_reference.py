"""The design chater-gpt replaces, as a benchmark reference: one message at a time,
poll → LLM call (the synchronous OpenAI SDK) → produce + flush → commit.

    python tests/load/sequential_reference.py --bootstrap 127.0.0.1:9092 \
        --base-url http://127.0.0.1:8080/v1

It answers in chater-gpt's reply format so the same load test can drive both.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from confluent_kafka import Consumer, Producer
from openai import OpenAI


def serve(args: argparse.Namespace) -> None:
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 300,
            "fetch.wait.max.ms": 10,  # Tansu answers a fetch only when this runs out
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap})
    client = OpenAI(base_url=args.base_url, api_key="sk-load-test-not-a-real-key", max_retries=0)
    consumer.subscribe([args.request_topic])
    while not stopping:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        envelope = json.loads(message.value() or b"{}")
        key, value = envelope.get("key") or (message.key() or b"").decode(), envelope["value"]
        try:
            completion = client.chat.completions.create(
                model=args.model,
                messages=[
                    {"role": "user", "content": value.get("message") or value.get("question")}
                ],
            )
            usage = completion.usage.model_dump() if completion.usage else {}
            reply = {"response": completion.choices[0].message.content, "usage": usage}
        except Exception as exc:  # the old service answered every failure with an error
            reply = {"error": {"code": "backend_error", "message": type(exc).__name__}}
        producer.produce(
            args.response_topic, key=key.encode(), value=json.dumps({"key": key, "value": reply})
        )
        producer.flush()
        consumer.commit(message=message, asynchronous=False)
    consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--request-topic", default="gpt-send")
    parser.add_argument("--response-topic", default="gpt-response")
    parser.add_argument("--group", default="sequential-reference")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="gpt-4o-mini")
    serve(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
