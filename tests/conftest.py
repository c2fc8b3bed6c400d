"""Shared fixtures: one real index over the bundled seeds, built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# The suite sends hundreds of requests from loopback, as a load bench would: exempt them from the
# rate limit. The tests of the limit itself set their own list (tests/test_security.py, test_attacks.py).
os.environ.setdefault("QA_RATE_LIMIT_EXEMPT", '["127.0.0.1", "::1"]')

from qa_app.config import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
DEV_SET = ROOT / "eval_sets" / "seeds_dev.jsonl"


def seed(name_prefix: str) -> Path:
    return next(SEEDS.glob(f"{name_prefix}_*.txt"))


@pytest.fixture(scope="session")
def seeds_settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("seeds_index"))


@pytest.fixture(scope="session")
def seeds_index(seeds_settings):
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest

    index = Index(seeds_settings)
    report = ingest([SEEDS], index, progress=False)
    assert not report.failed, report.failed
    assert len(report.added) == 5
    return index


@pytest.fixture(scope="session")
def assistant(seeds_index):
    from qa_app.answer import Assistant

    return Assistant(seeds_index.settings, index=seeds_index)
