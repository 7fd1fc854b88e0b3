"""The job API's state (`POST /ai_request`, `GET /get_request/<id>`), shared by every
gateway replica and the core.

A job is one JSON record (`<prefix>{jobs}:job:<id>`, expiring `ttl_seconds` after its
submission and again after it finished), a place in the queue (`{jobs}:queue`, a sorted
set by submission time: a job's position is its rank there) and, once finished, a mark
in `{jobs}:done` (finish times of the last minute: the recent throughput). Every
transition is one atomic step (a Lua script in Redis) and only moves forward:

    queued ──► processing ──► completed | error
       └─────► expired (waited longer than `max_wait_seconds` before the core took it)

so a replayed request (the core crashed mid-job) never moves a job back, and each
status enters the job's `history` once. The gateway writes `queued`; the core writes
the rest (it is the one that knows, and it outlives any gateway). The `{jobs}` hash
tag keeps the keys on one Redis Cluster slot (the scripts touch several).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from redis.asyncio import Redis

from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors

Status = Literal["queued", "processing", "completed", "error", "expired"]
Started = Literal["processing", "expired", "missing", "completed", "error"]
FINAL = ("completed", "error", "expired")
THROUGHPUT_WINDOW_SECONDS = 60.0
_STARTED: dict[str, Started] = {
    "processing": "processing",
    "expired": "expired",
    "missing": "missing",
    "completed": "completed",
    "error": "error",
}


@dataclass(frozen=True, slots=True)
class JobConfig:
    ttl_seconds: int  # GATEWAY_JOB_TTL_SECONDS: the record's life after submit / finish
    max_wait_seconds: float  # GATEWAY_JOB_MAX_WAIT_SECONDS: queued longer → expired
    capacity: int = 10_000  # GATEWAY_JOB_QUEUE_CAPACITY: queued jobs at most


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as read: its record, its place in the queue and the recent throughput."""

    record: dict[str, Any]
    position: int | None  # jobs queued ahead of it (queued jobs only)
    per_second: float  # jobs finished per second over the last minute

    @property
    def status(self) -> Status:
        status: Status = self.record["status"]
        return status


class JobStore(Protocol):
    async def submit(self, job_id: str, record: dict[str, Any]) -> int | None:
        """Queue a new job; its position, or None when the queue is full."""
        ...

    async def start(self, job_id: str) -> Started:
        """The core takes the job: `processing`, or why not (`expired`, `missing`), or
        the status it already has (a replay)."""
        ...

    async def finish(self, job_id: str, status: Status, result: dict[str, Any]) -> bool:
        """Record the outcome; False when the job was already final (or is gone)."""
        ...

    async def get(self, job_id: str) -> JobView | None: ...


def _new_record(record: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {**record, "status": "queued", "submitted_ms": now_ms, "history": [["queued", now_ms]]}


def _ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


@dataclass
class InMemoryJobStore:
    """Per process: the embedded stack, where the gateway and the core share a process
    (`make demo`) or a test; records are dropped `ttl_seconds` after their last write."""

    config: JobConfig
    clock: Callable[[], float] = time.time
    _records: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)
    _queue: dict[str, float] = field(default_factory=dict)  # id → submitted ms
    _done: list[float] = field(default_factory=list)

    def _live(self, job_id: str) -> dict[str, Any] | None:
        entry = self._records.get(job_id)
        if entry is None or entry[1] <= self.clock():
            self._records.pop(job_id, None)
            self._queue.pop(job_id, None)
            return None
        return entry[0]

    def _keep(self, job_id: str, record: dict[str, Any]) -> None:
        self._records[job_id] = (record, self.clock() + self.config.ttl_seconds)

    async def submit(self, job_id: str, record: dict[str, Any]) -> int | None:
        now = _ms(self.clock)
        oldest = now - self.config.max_wait_seconds * 1000
        for stale in [j for j, at in self._queue.items() if at < oldest or not self._live(j)]:
            self._queue.pop(stale, None)
        if len(self._queue) >= self.config.capacity:
            return None
        self._keep(job_id, _new_record(record, now))
        self._queue[job_id] = self.clock() * 1000
        return len(self._queue) - 1

    async def start(self, job_id: str) -> Started:
        record = self._live(job_id)
        if record is None:
            return "missing"
        if record["status"] != "queued":
            status: Started = record["status"]
            return status
        self._queue.pop(job_id, None)
        now = _ms(self.clock)
        expired = now - record["submitted_ms"] > self.config.max_wait_seconds * 1000
        record["status"] = "expired" if expired else "processing"
        record["history"].append([record["status"], now])
        return "expired" if expired else "processing"

    async def finish(self, job_id: str, status: Status, result: dict[str, Any]) -> bool:
        record = self._live(job_id)
        if record is None or record["status"] in FINAL:
            return False
        now = _ms(self.clock)
        record.update(status=status, result=result, finished_ms=now)
        record["history"].append([status, now])
        self._keep(job_id, record)
        self._queue.pop(job_id, None)
        self._done = [t for t in self._done if t > self.clock() - THROUGHPUT_WINDOW_SECONDS]
        self._done.append(self.clock())
        return True

    async def get(self, job_id: str) -> JobView | None:
        record = self._live(job_id)
        if record is None:
            return None
        position = None
        if record["status"] == "queued" and job_id in self._queue:
            at = self._queue[job_id]
            position = sum(1 for other in self._queue.values() if other < at)
        recent = [t for t in self._done if t > self.clock() - THROUGHPUT_WINDOW_SECONDS]
        return JobView(dict(record), position, len(recent) / THROUGHPUT_WINDOW_SECONDS)


# KEYS: record, queue. ARGV: id, record JSON, ttl s, capacity, now ms, oldest queued ms.
_SUBMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return redis.call('ZRANK', KEYS[2], ARGV[1])
"""
# KEYS: record, queue. ARGV: id, now ms, max wait ms.
_START = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 'missing' end
local job = cjson.decode(raw)
if job.status ~= 'queued' then return job.status end
redis.call('ZREM', KEYS[2], ARGV[1])
local now = tonumber(ARGV[2])
if now - job.submitted_ms > tonumber(ARGV[3]) then job.status = 'expired'
else job.status = 'processing' end
table.insert(job.history, {job.status, now})
redis.call('SET', KEYS[1], cjson.encode(job), 'KEEPTTL')
return job.status
"""
# KEYS: record, queue, done. ARGV: id, now ms, status, result JSON, ttl s, window ms.
# The result stays a JSON string inside the record (cjson would turn {} into []).
_FINISH = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local job = cjson.decode(raw)
if job.status == 'completed' or job.status == 'error' or job.status == 'expired' then
  return 0
end
local now = tonumber(ARGV[2])
job.status = ARGV[3]
job.result_json = ARGV[4]
job.finished_ms = now
table.insert(job.history, {ARGV[3], now})
redis.call('SET', KEYS[1], cjson.encode(job), 'EX', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[6]))
return 1
"""


class RedisJobStore:
    def __init__(
        self,
        client: Redis,
        config: JobConfig,
        *,
        keys: KeySpace,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._config = config
        self._keys = keys
        self._clock = clock
        self._submit = client.register_script(_SUBMIT)
        self._start = client.register_script(_START)
        self._finish = client.register_script(_FINISH)

    async def submit(self, job_id: str, record: dict[str, Any]) -> int | None:
        now = _ms(self._clock)
        oldest = now - int(self._config.max_wait_seconds * 1000)
        body = orjson.dumps(_new_record(record, now))
        keys = [self._keys.job(job_id), self._keys.job_queue()]
        # Scored to the microsecond: a later job never ties with (and sorts before) an
        # earlier one, so a queued job's position only ever goes down.
        score = f"{self._clock() * 1000:.3f}"
        args: list[bytes | str | int] = [
            job_id,
            body,
            self._config.ttl_seconds,
            self._config.capacity,
            score,
            oldest,
        ]
        with store_errors("jobs"):
            rank = await self._submit(keys=keys, args=args)
        return None if int(rank) < 0 else int(rank)

    async def start(self, job_id: str) -> Started:
        now = _ms(self._clock)
        keys = [self._keys.job(job_id), self._keys.job_queue()]
        wait_ms = int(self._config.max_wait_seconds * 1000)
        with store_errors("jobs"):
            status = await self._start(keys=keys, args=[job_id, now, wait_ms])
        text = status.decode() if isinstance(status, bytes) else str(status)
        return _STARTED.get(text, "missing")

    async def finish(self, job_id: str, status: Status, result: dict[str, Any]) -> bool:
        keys = [self._keys.job(job_id), self._keys.job_queue(), self._keys.jobs_done()]
        window_ms = int(THROUGHPUT_WINDOW_SECONDS * 1000)
        args: list[bytes | str | int] = [
            job_id,
            _ms(self._clock),
            status,
            orjson.dumps(result),
            self._config.ttl_seconds,
            window_ms,
        ]
        with store_errors("jobs"):
            return int(await self._finish(keys=keys, args=args)) == 1

    async def get(self, job_id: str) -> JobView | None:
        now = _ms(self._clock)
        since = now - int(THROUGHPUT_WINDOW_SECONDS * 1000)
        with store_errors("jobs"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(self._keys.job(job_id))
                pipe.zrank(self._keys.job_queue(), job_id)
                pipe.zcount(self._keys.jobs_done(), since, "+inf")
                raw, rank, done = await pipe.execute()
        if raw is None:
            return None
        record = orjson.loads(raw)
        if "result_json" in record:
            record["result"] = orjson.loads(record.pop("result_json"))
        position = int(rank) if rank is not None and record["status"] == "queued" else None
        return JobView(record, position, int(done) / THROUGHPUT_WINDOW_SECONDS)
