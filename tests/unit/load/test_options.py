"""The photo options of the load test and the benchmarks, and where their replies are read."""

import pytest

from tests.load import bench
from tests.load._target import KafkaTarget
from tests.load.load_test import parse_args, parse_size, spec_from_args, target_from_args


def test_photo_size_parses_width_by_height() -> None:
    assert parse_size("640x480") == (640, 480)
    assert parse_size("64X48") == (64, 48)
    for bad in ("640", "0x10", "axb", "10x10x10"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_photo_runs_read_both_reply_topics() -> None:
    target = KafkaTarget("x:9092")
    assert target.response_topics(photos=False) == ["gpt-response"]
    assert target.response_topics(photos=True) == ["gpt-response", "photo-analysis-response"]


def test_load_test_options_reach_the_spec_and_the_target() -> None:
    args = parse_args(
        [
            "--payload=photo-mixed",
            "--photo-size=32x32",
            "--bootstrap=k:9093",
            "--photo-request-topic=p-in",
            "--photo-response-topic=p-out",
        ]
    )
    spec = spec_from_args(args)
    assert (spec.payload, spec.photo_size) == ("photo-mixed", (32, 32))
    target = target_from_args(args)
    assert (target.photo_request_topic, target.photo_response_topic) == ("p-in", "p-out")
    defaults = spec_from_args(parse_args([]))
    assert (defaults.payload, defaults.photo_size) == ("text", (64, 48))


def test_bench_payload_options() -> None:
    args = bench.parse_args(["--only", "A,B", "--payload", "photo-mixed", "--b-clients", "sdk"])
    assert (args.only, args.payload, args.b_clients) == (["A", "B"], "photo-mixed", ("sdk",))
    defaults = bench.parse_args([])
    assert (defaults.payload, defaults.b_clients) == ("text", ("sdk", "aiohttp"))
    assert bench.FULL.payload == "text"
    with pytest.raises(SystemExit):
        bench.parse_args(["--b-clients", "httpx"])
