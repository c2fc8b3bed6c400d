"""Multi-turn: follow-ups over the real seeds become standalone questions before retrieval —
by the LLM when one is configured (here a scripted stand-in, no network), else by the rule
``with_topic``; a failing or rambling LLM falls back to the rule."""
from __future__ import annotations

import re

import pytest

from qa_app.answer import Assistant, with_topic
from qa_app.config import Settings
from qa_app.llm.base import ChatGenerator, GeneratorError
from qa_app.llm.prompting import build_condense_messages, clean_condensed

GDP_Q = "2023年海淀区地区生产总值增长了多少？"


@pytest.mark.parametrize(
    "history, follow_up, key",
    [
        ([GDP_Q], "那2024年呢？", "6.0%"),
        (["2019年海淀区建立了多少支家庭医生团队？"], "2023年呢？", "831支"),
        (["2023年海淀区居民人均可支配收入增长了多少？"], "2024年呢？", "4.1%"),
        # After a question about a place the index does not cover (refused), a follow-up naming
        # another place asks about that place, in the year asked before.
        (["朝阳区2023年地区生产总值增速是多少？"], "那海淀呢？", "6%"),
    ],
)
def test_rule_condenses_year_follow_ups(assistant, history, follow_up, key):
    a = assistant.ask(follow_up, history=history)
    assert key in a.text and not a.refused and a.grounded, a.text
    assert a.question == follow_up


def test_a_follow_up_s_own_place_and_year_replace_the_previous_ones():
    assert with_topic("那海淀呢？", "朝阳区2023年地区生产总值增速是多少？") == "2023年地区生产总值增速是多少，那海淀呢？"
    assert with_topic("那2024年呢？", GDP_Q) == "海淀区地区生产总值增长了多少，那2024年呢？"
    assert with_topic("实际呢？", GDP_Q) == "2023年海淀区地区生产总值增长了多少，实际呢？"


class ScriptedLLM(ChatGenerator):
    """A ChatGenerator whose model is a function: condense requests get ``rewrites``; answer
    requests cite the passage holding ``figure``."""

    name = "scripted"

    def __init__(self, settings, rewrites: dict[str, str], figure: str = "6.0%"):
        super().__init__(settings)
        self.rewrites, self.figure, self.calls = rewrites, figure, []

    def chat(self, messages, max_tokens=None):
        content = messages[-1]["content"]
        self.calls.append(content)
        if "<后续问题>" in content:
            follow_up = re.search(r"<后续问题>(.*?)</后续问题>", content, re.S).group(1)
            reply = self.rewrites.get(follow_up)
            if isinstance(reply, Exception):
                raise reply
            return reply if reply is not None else follow_up
        passages = re.findall(r'<资料 编号="(\d+)"[^>]*>\n(.*?)\n</资料>', content, re.S)
        n = next((n for n, text in passages if self.figure in text), None)
        return f"地区生产总值同比增长{self.figure}[{n}]。" if n else "报告中没有找到能够回答这个问题的内容。"

    def chat_stream(self, messages, max_tokens=None):
        text = self.chat(messages, max_tokens)
        for i in range(0, len(text), 3):
            yield text[i : i + 3]


def scripted(seeds_index, rewrites, **settings) -> tuple[Assistant, ScriptedLLM]:
    s = Settings(data_dir=seeds_index.settings.data_dir, **settings)
    llm = ScriptedLLM(s, rewrites)
    return Assistant(s, index=seeds_index, generator=llm), llm


def asked_question(llm: ScriptedLLM) -> str:
    return re.search(r"<问题>(.*?)</问题>", llm.calls[-1], re.S).group(1)


def test_llm_condenses_a_pronoun_follow_up(seeds_index):
    history = ["2024年海淀区地区生产总值增速目标是多少？"]
    follow_up = "它实际完成得怎么样？"
    standalone = "2024年海淀区地区生产总值实际增长了多少？"
    a, llm = scripted(seeds_index, {follow_up: standalone})
    answer = a.ask(follow_up, history=history)
    condense_prompt = llm.calls[0]
    assert history[0] in condense_prompt and "<后续问题>它实际完成得怎么样？</后续问题>" in condense_prompt
    assert asked_question(llm) == standalone  # retrieval and the answer prompt see the rewrite
    assert answer.grounded and answer.backend == "scripted" and "6.0%" in answer.text, answer.reasons
    assert answer.question == follow_up and "condense_ms" in answer.timings
    # The rule alone cannot do this one: it has a topic word of its own, so it passes unchanged.
    assert with_topic(follow_up, history[0]) == follow_up


def test_condensation_in_a_streamed_conversation(seeds_index):
    a, llm = scripted(seeds_index, {"那2024年呢？": "2024年海淀区地区生产总值增长了多少？"})
    items = list(a.stream_answer("那2024年呢？", history=[GDP_Q]))
    assert asked_question(llm) == "2024年海淀区地区生产总值增长了多少？"
    assert items[-1].grounded and "6.0%" in "".join(items[:-1])


@pytest.mark.parametrize(
    "reply, why",
    [
        (GeneratorError("cannot reach the LLM endpoint"), "cannot reach"),
        ("", "no usable standalone question"),
        ("好的。" * 200, "no usable standalone question"),
        ("2024年海淀区地区生产总值增长6.0%[1]。", "no usable standalone question"),
    ],
)
def test_a_failing_llm_falls_back_to_the_rule(seeds_index, reply, why):
    a, llm = scripted(seeds_index, {"那2024年呢？": reply})
    answer = a.ask("那2024年呢？", history=[GDP_Q])
    assert asked_question(llm) == with_topic("那2024年呢？", GDP_Q)
    assert any(r.startswith("follow-up condensed by rule") and why in r for r in answer.reasons), answer.reasons
    assert answer.grounded and "6.0%" in answer.text


def test_an_unavailable_llm_is_not_asked_twice(seeds_index):
    a, llm = scripted(seeds_index, {"那2024年呢？": GeneratorError("no reply within 1 s", unavailable=True)})
    answer = a.ask("那2024年呢？", history=[GDP_Q])
    assert len(llm.calls) == 1 and answer.backend == "extractive (fallback from scripted)"
    assert "6.0%" in answer.text and any("no reply within 1 s" in r for r in answer.reasons)
    items = list(a.stream_answer("那2024年呢？", history=[GDP_Q]))
    assert len(llm.calls) == 2 and items[-1].backend.startswith("extractive") and "6.0%" in items[0]


def test_no_history_no_condensation(seeds_index):
    a, llm = scripted(seeds_index, {})
    a.ask(GDP_Q.replace("2023", "2024"))
    assert len(llm.calls) == 1 and "<后续问题>" not in llm.calls[0]


def test_condense_prompt_is_a_file_and_can_be_overridden(tmp_path):
    messages = build_condense_messages("那2024年呢？", ["问题一", "问题二"])
    [m] = messages
    assert "1. 问题一\n2. 问题二" in m["content"] and "<后续问题>那2024年呢？</后续问题>" in m["content"]
    assert "只输出改写后的问题" in m["content"]
    (tmp_path / "condense.md").write_text("HISTORY:\n{history}\nFOLLOW-UP: {question}", encoding="utf-8")
    [m] = build_condense_messages("What about 2024?", ["GDP growth in 2023?"], tmp_path)
    assert m["content"] == "HISTORY:\n1. GDP growth in 2023?\nFOLLOW-UP: What about 2024?"


def test_clean_condensed():
    assert clean_condensed("<think>…</think>\n改写后的问题：2024年的呢？", "那2024年呢？", ["x"]) == "2024年的呢？"
    assert clean_condensed("Standalone question: What was GDP growth in 2024?", "And 2024?", ["x"]) == "What was GDP growth in 2024?"
    for bad in ("", "  \n ", "好" * 1000):
        with pytest.raises(GeneratorError):
            clean_condensed(bad, "那2024年呢？", ["2023年海淀区地区生产总值增长了多少？"])
