"""Per-client request rate limits: one token bucket per client address.

A client may send ``burst`` requests at once; the bucket then refills at ``per_minute``
requests a minute. The server asks ``acquire(client)`` before handling a request and gets
either 0 (go ahead: a token was taken) or the seconds until a token is free (answer 429
with ``Retry-After``). Buckets of clients that have gone quiet are forgotten, so memory stays
bounded however many addresses call.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(
        self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000
    ):
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limit needs per_minute > 0 and burst >= 1")
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()  # the ASGI app may be driven from several threads (tests, workers)

    def __len__(self) -> int:
        """How many clients' buckets are kept (bounded by ``max_clients``)."""
        return len(self._buckets)

    def acquire(self, client: str) -> float:
        """0.0 when ``client`` may make a request now (a token is taken); else the seconds to wait."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                self._forget_idle(now)
                bucket = self._buckets[client] = _Bucket(self.burst, now)
            else:
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
                bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Before adding a client to a full table: drop the buckets that have refilled (a client
        that comes back gets a full bucket anyway), then, if still full, the longest idle."""
        if len(self._buckets) < self.max_clients:
            return
        refill = self.burst / self.rate  # seconds for an empty bucket to fill up
        for key in [k for k, b in self._buckets.items() if now - b.stamp >= refill]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_clients:
            del self._buckets[min(self._buckets, key=lambda k: self._buckets[k].stamp)]
