"""arq backend of the job queue: batches hand-overs into one Redis round trip.

`ArqRedis.enqueue_job` costs a WATCH/MULTI round trip per job (about 3,200 jobs/s at best);
the relay hands over hundreds at once, so this module enqueues a batch through one pipeline
of a small Lua script that does exactly what `enqueue_job` does for one job (skip when the
job or its result exists, else store the job and add it to the queue), atomically per job.
Jobs are serialised as JSON, not pickle: whoever can write to Redis cannot run code in the
worker through us.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from redis.asyncio import Redis
from redis.exceptions import RedisError

from receiver.queue import JobRequest, QueueUnavailableError

_ENQUEUE = """
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('psetex', KEYS[1], ARGV[2], ARGV[1])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


def job_serializer(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def job_deserializer(payload: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(payload)
    return data


class ArqQueue:
    name = "arq"

    def __init__(self, redis_url: str, *, queue_name: str = default_queue_name) -> None:
        self._redis: Redis = Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
        self._queue_name = queue_name
        self._script = self._redis.register_script(_ENQUEUE)

    @property
    def redis(self) -> Redis:
        return self._redis

    async def enqueue_many(self, jobs: Sequence[JobRequest]) -> None:
        if not jobs:
            return
        now_ms = int(time.time() * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    defer_ms = int(job.defer * 1000)
                    payload = serialize_job(
                        job.function, (job.arg,), {}, None, now_ms, serializer=job_serializer
                    )
                    await self._script(
                        keys=[
                            job_key_prefix + job.job_id,
                            result_key_prefix + job.job_id,
                            self._queue_name,
                        ],
                        args=[payload, defer_ms + expires_extra_ms, now_ms + defer_ms, job.job_id],
                        client=pipe,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise QueueUnavailableError(type(exc).__name__) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def depth(self) -> int | None:
        try:
            return int(await self._redis.zcard(self._queue_name))
        except (RedisError, OSError):
            return None

    async def close(self) -> None:
        await self._redis.aclose()
