"""Consumer lag from librdkafka's statistics (the `stats_cb` JSON document), for
`chater_gpt_consumer_lag`."""

from __future__ import annotations

import json
from typing import Any


def lag_from_stats(stats_json: str) -> dict[tuple[str, int], int]:
    """Consumer lag per assigned partition from a librdkafka statistics JSON document.

    Skips the internal partition -1 and partitions the consumer no longer wants
    (`desired: false`, e.g. revoked). See `_partition_lag` for unknown lags.
    """
    stats: Any = json.loads(stats_json)
    lags: dict[tuple[str, int], int] = {}
    topics = stats.get("topics") if isinstance(stats, dict) else None
    if not isinstance(topics, dict):
        return lags
    for topic_name, topic in topics.items():
        partitions = topic.get("partitions") if isinstance(topic, dict) else None
        if not isinstance(partitions, dict):
            continue
        for partition in partitions.values():
            if not isinstance(partition, dict) or partition.get("desired") is False:
                continue
            number = partition.get("partition")
            lag = _partition_lag(partition)
            if isinstance(number, int) and number >= 0 and lag is not None:
                lags[(str(topic_name), number)] = lag
    return lags


def _partition_lag(partition: dict[str, Any]) -> int | None:
    """librdkafka's `consumer_lag` (end offset minus committed offset).

    librdkafka reports -1 while the group has committed nothing on the partition;
    then every retained message is still waiting (auto.offset.reset=earliest), so
    the lag is high minus low watermark. None when the watermarks are unknown too.
    """
    lag = partition.get("consumer_lag")
    if isinstance(lag, int) and lag >= 0:
        return lag
    committed, hi, lo = (partition.get(k) for k in ("committed_offset", "hi_offset", "lo_offset"))
    if (
        isinstance(committed, int)
        and committed < 0
        and isinstance(hi, int)
        and isinstance(lo, int)
        and 0 <= lo <= hi
    ):
        return hi - lo
    return None
