"""Backends from outside the package: one class and one entry point each, nothing else edited.

The toy generator below quotes the first sentence of the best passage; the toy vector store keeps
vectors in a dict. Each is registered the way a plugin package would register it (an entry point
in the ``qa_app.generators`` / ``qa_app.vector_stores`` group) and then works through the same
paths as the built-in ones.
"""
from __future__ import annotations

import importlib.metadata
from importlib.metadata import EntryPoint

import numpy as np

import pytest

from qa_app.models import Answer, Citation

from .test_api import GDP_Q


class FirstSentenceGenerator:
    name = "first-sentence"
    is_llm = False

    def __init__(self, settings):
        self.settings = settings

    @classmethod
    def readiness(cls, settings) -> tuple[bool, str]:
        return True, "toy backend, always ready"

    def generate(self, question, passages) -> Answer:
        best = passages[0]
        sentence = best.chunk.text.split("。")[0] + "。"
        cite = Citation(n=1, doc_id=best.doc.doc_id, chunk_id=best.chunk.chunk_id, title=best.doc.title,
                        section=best.chunk.section, date=best.doc.date, quote=sentence)
        return Answer(question=question.query.text, text=f"{sentence}[1]", citations=[cite], passages=passages,
                      backend=self.name)

    def stream(self, question, passages):
        yield self.generate(question, passages).text


@pytest.fixture
def plugin(monkeypatch):
    from qa_app.llm import registry

    found = [EntryPoint(name="first-sentence", value=f"{__name__}:FirstSentenceGenerator", group=registry.GROUP),
             EntryPoint(name="extractive", value=f"{__name__}:FirstSentenceGenerator", group=registry.GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep for ep in found if ep.group == group])
    return registry


def test_a_plugin_backend_answers_through_the_one_path(plugin, seeds_index):
    from qa_app.answer import Assistant

    settings = seeds_index.settings.model_copy(update={"generator": "first-sentence"})
    assistant = Assistant(settings, index=seeds_index)
    answer = assistant.ask(GDP_Q)
    assert answer.backend == "first-sentence" and answer.text.endswith("[1]")
    assert answer.citations[0].quote in answer.passages[0].chunk.text
    assert answer.grounded  # the same checks as any backend's answer
    streamed = list(assistant.stream_answer(GDP_Q))
    assert streamed[-1].text == answer.text and "".join(streamed[:-1]) == answer.text


def test_a_plugin_is_listed_with_its_own_readiness_and_cannot_take_a_builtin_name(plugin, seeds_index):
    from typer.testing import CliRunner

    from qa_app.cli import app

    assert plugin.available()["extractive"] == plugin.BUILTIN["extractive"]
    assert plugin.readiness("first-sentence", seeds_index.settings) == (True, "toy backend, always ready")
    result = CliRunner().invoke(app, ["backends", "--data-dir", str(seeds_index.settings.data_dir)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "first-sentence" in x)
    assert "ready" in line and "toy backend" in line
    with pytest.raises(plugin.UnknownGenerator) as caught:
        plugin.generator_class("nope")
    assert "first-sentence" in str(caught.value)


# --- a vector store ----------------------------------------------------------------------------------
class MemoryStore:
    """Vectors in a dict (per data folder and model, shared by the Index objects of one process)."""

    _folders: dict[str, dict[str, tuple[np.ndarray, dict]]] = {}

    def __init__(self, settings, model_name: str) -> None:
        self.rows = self._folders.setdefault(f"{settings.resolved_data_dir()}|{model_name}", {})

    def count(self) -> int:
        return len(self.rows)

    def all_ids(self) -> set[str]:
        return set(self.rows)

    def doc_ids(self) -> set[str]:
        return {meta["doc_id"] for _, meta in self.rows.values()}

    def ids_for_docs(self, doc_ids: list[str]) -> set[str]:
        return {cid for cid, (_, meta) in self.rows.items() if meta["doc_id"] in set(doc_ids)}

    def upsert(self, ids, vectors, metadatas) -> None:
        for cid, vector, meta in zip(ids, vectors, metadatas):
            v = np.asarray(vector, dtype=np.float32)
            self.rows[cid] = (v / np.linalg.norm(v), dict(meta))

    def delete(self, ids) -> None:
        for cid in ids:
            self.rows.pop(cid, None)

    def query(self, vector, k, doc_ids=None):
        q = np.asarray(vector, dtype=np.float32)
        q = q / np.linalg.norm(q)
        scored = [(cid, float(v @ q)) for cid, (v, meta) in self.rows.items()
                  if doc_ids is None or meta["doc_id"] in doc_ids]
        return sorted(scored, key=lambda x: -x[1])[:k]

    def reset(self) -> None:
        self.rows.clear()

    def close(self) -> None:
        pass

    @classmethod
    def local_folder(cls, settings):
        return None

    @classmethod
    def forget(cls, settings) -> None:
        pass

    @classmethod
    def holds_vectors(cls, settings) -> bool:
        return False


PARKS = "海淀区公园建设情况报告\n\n一、总体情况\n2025年海淀区新建口袋公园12座，全区绿化覆盖率达到52%。\n"
SCHOOLS = "海淀区教育发展报告\n\n一、学校建设\n2025年海淀区新增中小学学位3200个，新建幼儿园5所。\n"


def test_a_plugin_vector_store_holds_the_index(monkeypatch, tmp_path, seeds_index):
    from qa_app.answer import Assistant
    from qa_app.config import Settings
    from qa_app.doctor import run_doctor
    from qa_app.index.store import Index
    from qa_app.index.vector_store import STORE_GROUP
    from qa_app.ingest.pipeline import ingest

    found = [EntryPoint(name="memory", value=f"{__name__}:MemoryStore", group=STORE_GROUP)]
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None, **kw: [ep for ep in found if ep.group == group] if group == STORE_GROUP
                        else real(group=group, **kw))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parks.txt").write_text(PARKS, encoding="utf-8")
    (docs / "schools.txt").write_text(SCHOOLS, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", vector_store="memory")
    index = Index(settings, embeddings=seeds_index.embeddings)
    report = ingest([docs], index, progress=False)
    assert sorted(report.added) == ["parks.txt", "schools.txt"]
    assert isinstance(index.vectors, MemoryStore) and index.vectors.count() == len(index)
    assert not (tmp_path / "data" / "chroma").exists()  # nothing of Chroma's was made
    hits = index.dense_search("新增了多少中小学学位", k=1)
    assert index.snapshot().chunks[hits[0][0]].doc_id == "schools.txt"
    answer = Assistant(settings, index=index).ask("2025年海淀区新建口袋公园多少座？")
    assert "12座" in answer.text and answer.citations[0].doc_id == "parks.txt"
    assert run_doctor(settings, repair=False, index=index).ok
    assert index.delete_document("parks.txt") and index.vectors.doc_ids() == {"schools.txt"}
    with pytest.raises(ValueError, match="QA_VECTOR_STORE"):
        Index(Settings(data_dir=tmp_path / "other", vector_store="nope"))


def test_model_backends_own_typed_options(seeds_index):
    """Each model backend declares what it reads of the settings (QA_LLM_*), typed and frozen."""
    from pydantic import ValidationError

    from qa_app.llm.openai_backend import OpenAIGenerator
    from qa_app.llm.transformers_backend import TransformersGenerator

    settings = seeds_index.settings.model_copy(update={"llm_api_key": "sk-secret", "llm_model": "m", "llm_timeout": 7.5})
    options = OpenAIGenerator(settings).options
    assert options.model == "m" and options.timeout == 7.5 and options.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(options) and "sk-secret" not in str(options.model_dump())
    local = TransformersGenerator.Options.from_settings(settings)
    assert set(local.model_fields) == {"model", "timeout", "temperature", "max_tokens"}  # no key, no URL
    with pytest.raises(ValidationError):
        options.timeout = 1.0  # frozen: a generator's options do not change under it
    with pytest.raises(ValidationError):
        OpenAIGenerator.Options.from_settings(settings.model_copy(update={"llm_timeout": "soon"}))
