"""Deterministic crash points for the crash-safety tests (tests/test_integrity.py).

With ``QA_TEST_CRASH_AT=<stage>`` or ``<stage>:<n>`` in the environment, the process
SIGKILLs itself the n-th time (default: the first) a write reaches that stage, exactly as
an OOM kill or a power cut would stop it: no ``finally`` blocks, no flushing. Unset
(always, outside tests), a crash point costs one environment lookup.

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
from collections import Counter

ENV = "QA_TEST_CRASH_AT"
_reached: Counter[str] = Counter()


def crash_point(stage: str, amount: int = 1) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, threshold = wanted.partition(":")
    if name != stage:
        return
    _reached[stage] += amount
    if _reached[stage] >= int(threshold or 1):
        os.kill(os.getpid(), signal.SIGKILL)
