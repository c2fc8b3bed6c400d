"""A backend from outside the package: one class and one entry point, nothing else edited.

The toy backend below quotes the first sentence of the best passage. It is registered the way a
plugin package would register it (an entry point in the ``qa_app.generators`` group) and then
answers through the same path as the built-in ones, and reports its readiness to ``qa-app backends``.
"""
from __future__ import annotations

from importlib.metadata import EntryPoint

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
