"""Deterministic crash points for the crash-safety tests (tests/test_integrity.py).

With ``QA_TEST_CRASH_AT=<stage>`` or ``<stage>:<n>`` in the environment, the process
SIGKILLs itself the n-th time (default: the first) a write reaches that stage, exactly as
an OOM kill or a power cut would stop it: no ``finally`` blocks, no flushing. Unset
(always, outside tests), a crash point costs two environment lookups.

With ``QA_TEST_PAUSE_AT=<stage>[:<n>]`` and ``QA_TEST_PAUSE_UNTIL=<file>``, the write instead
waits there (from the n-th time on) until that file exists, at most ``PAUSE_LIMIT_S`` seconds:
writes hold the writer lock only briefly, so the tests that watch what other writers and readers
do meanwhile hold one at a known point rather than hoping to catch it.

Stages, in the order a document is written (counts are per process):
- ``embedded:<n>``  once at least n chunks were freshly embedded and cached
- ``vectors:<n>``   after the n-th document's vectors were upserted into Chroma, before the catalog
- ``catalog:<n>``   inside the n-th catalog transaction, rows written, before COMMIT
- ``committed:<n>`` after the n-th catalog commit, before that document's stale vectors are deleted
- ``reconcile``     while repairing, after orphan vectors were deleted, before missing ones are restored
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

ENV = "QA_TEST_CRASH_AT"
PAUSE_ENV = "QA_TEST_PAUSE_AT"
PAUSE_UNTIL_ENV = "QA_TEST_PAUSE_UNTIL"
PAUSE_LIMIT_S = 120.0
_reached: Counter[str] = Counter()
_paused: Counter[str] = Counter()


def _due(env: str, stage: str, amount: int, counts: Counter[str]) -> bool:
    wanted = os.environ.get(env)
    if not wanted:
        return False
    name, _, threshold = wanted.partition(":")
    if name != stage:
        return False
    counts[stage] += amount
    return counts[stage] >= int(threshold or 1)


def crash_point(stage: str, amount: int = 1) -> None:
    if _due(PAUSE_ENV, stage, amount, _paused):
        until = Path(os.environ.get(PAUSE_UNTIL_ENV, ""))
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not until.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if _due(ENV, stage, amount, _reached):
        os.kill(os.getpid(), signal.SIGKILL)
