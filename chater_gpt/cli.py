"""Command line: `run` (production, configured by the environment; also what a bare
`python main.py` does, as the original service started), `gateway` (the HTTP gateway:
OpenAI's API over Kafka), `demo` (the embedded
local stack end to end), `schema` (write or check the committed JSON Schemas), `usage`
(tokens and cost of a user or a tenant on a UTC day, from Redis)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from chater_gpt.allocator import tune_malloc
from chater_gpt.config import Settings, load_settings
from chater_gpt.contracts import json_schemas
from chater_gpt.errors import ConfigError
from chater_gpt.usage_cli import add_parser as add_usage_parser
from chater_gpt.usage_cli import run_usage

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chater-gpt", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the service (configured by environment variables)")
    commands.add_parser("gateway", help="run the HTTP gateway (OpenAI's API, through Kafka)")
    demo = commands.add_parser("demo", help="run end to end on the embedded local stack")
    demo.add_argument("--requests", type=int, default=3, help="chat requests to send")
    schema = commands.add_parser("schema", help="write or check schemas/*.json")
    schema.add_argument("--check", action="store_true", help="fail if the files are stale")
    add_usage_parser(commands)
    args = parser.parse_args(argv)

    if args.command in (None, "run", "demo", "gateway"):
        tune_malloc()
    if args.command in (None, "run"):
        return run_service()
    if args.command == "gateway":
        return run_gateway()
    if args.command == "demo":
        from chater_gpt.dev.demo import run_demo

        return run_demo(requests=args.requests)
    if args.command == "usage":
        settings = _settings_or_none()
        if settings is None:
            return 2
        return run_usage(settings, args.user, args.day, tenant=args.tenant)
    return write_schemas(check=args.check)


def _settings_or_none(*, llm: bool = True) -> Settings | None:
    """The environment's settings, or None after one line on stderr naming what is wrong."""
    try:
        return load_settings(llm=llm)
    except ConfigError as exc:
        print(f"chater-gpt: {exc.message}", file=sys.stderr)
        return None


def run_service(settings: Settings | None = None) -> int:
    settings = settings or _settings_or_none()
    if settings is None:
        return 2
    from chater_gpt.wiring import build_service, start_observability

    redactor = start_observability(settings)

    async def serve() -> int:
        return await build_service(settings, redact=redactor).run()

    return asyncio.run(serve())


def run_gateway(settings: Settings | None = None) -> int:
    # The gateway calls no LLM: it needs no backend's key (its pods get none).
    settings = settings or _settings_or_none(llm=False)
    if settings is None:
        return 2
    from chater_gpt.wiring import start_observability
    from chater_gpt.wiring.gateway import build_gateway

    start_observability(settings)
    try:
        gateway = build_gateway(settings)
    except ConfigError as exc:
        print(f"chater-gpt: {exc.message}", file=sys.stderr)
        return 2
    return asyncio.run(gateway.run())


def write_schemas(*, check: bool) -> int:
    stale = []
    for name, schema in json_schemas().items():
        path = SCHEMA_DIR / name
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale schemas (run `python main.py schema`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0
