"""The ``transformers`` backend on a tiny causal LM built here: random weights, a byte-level BPE
tokenizer trained on the seeds' text, a ChatML chat template, saved to a folder. It proves
loading, prompting through the chat template, bounded generation, streaming and that the
output (gibberish) goes through verification — not answer quality.
"""
from __future__ import annotations


import pytest

from qa_app.answer import Assistant
from qa_app.config import Settings
from qa_app.llm.base import GeneratorError
from qa_app.models import Answer

from .conftest import SEEDS

GDP_Q = "2023年海淀区地区生产总值增长了多少？"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CONTEXT = 1024  # small on purpose: the prompt must be cut to fit


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("tiny_lm")
    special = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    tok.train_from_iterator((line for t in texts for line in t.splitlines() if line.strip()), trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<|im_end|>",
        model_max_length=CONTEXT,
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=CONTEXT, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=True,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def local_assistant(seeds_index, folder, **overrides) -> Assistant:
    values = dict(data_dir=seeds_index.settings.data_dir, generator="transformers", llm_model=str(folder), llm_max_tokens=12, llm_timeout=20.0, llm_temperature=0.0)
    values.update(overrides)
    return Assistant(Settings(**values), index=seeds_index)


def test_local_model_loads_generates_and_is_verified(seeds_index, tiny_model):
    from qa_app.llm.transformers_backend import load_model

    a = local_assistant(seeds_index, tiny_model)
    assert a.uses_llm and a.generator.name == "transformers"
    # The prompt goes through the chat template and is cut to the model's context.
    passages = a.search(GDP_Q, k=8)
    from qa_app.index.query import Query
    from qa_app.question import analyse

    snap = seeds_index.snapshot()
    analysis = analyse(Query.parse(GDP_Q), snap.bm25.term_idf, snap.knows)
    messages, given = a.generator.prepare(analysis, passages)
    enc = a.generator.encode(messages)
    assert 1 <= len(given) < len(passages) and enc["input_ids"].shape[1] + 12 <= CONTEXT
    tokenizer, model, _ = load_model(tiny_model)
    # The system prompt (whatever its wording) reaches the model first, through the chat template.
    from qa_app.prompts import load_prompt

    first_line = load_prompt("system", a.settings.prompts_dir).splitlines()[0]
    assert tokenizer.decode(enc["input_ids"][0]).startswith("<|im_start|>system\n" + first_line)
    # Generation is bounded by QA_LLM_MAX_TOKENS.
    assert isinstance(a.generator.chat(messages), str)
    kwargs = a.generator.generate_kwargs(enc, None)
    assert kwargs["max_new_tokens"] == 12 and kwargs["max_time"] == 20.0 and not kwargs["do_sample"]
    assert model.generate(**kwargs).shape[1] - enc["input_ids"].shape[1] <= 12
    # Through the Assistant: the gibberish fails verification, the extractive answer stands in.
    ans = a.ask(GDP_Q)
    assert ans.backend == "extractive (fallback from transformers)" and not ans.grounded
    assert any(r.startswith("transformers") for r in ans.reasons), ans.reasons
    assert "6%" in ans.text and ans.citations
    # Without the fallback: a refusal (or, for empty output, the error) — never the gibberish.
    try:
        b = local_assistant(seeds_index, tiny_model, llm_fallback=False).ask(GDP_Q)
    except GeneratorError as exc:
        assert "no answer text" in str(exc)
    else:
        assert b.refused and not b.grounded and b.backend == "transformers" and b.text.startswith("报告中没有找到")
    assert load_model(str(tiny_model)) is load_model(tiny_model.resolve())  # loaded once, shared by every Assistant


def test_local_model_streams(seeds_index, tiny_model):
    a = local_assistant(seeds_index, tiny_model, llm_max_tokens=8)
    items = list(a.stream_answer(GDP_Q))
    final = items[-1]
    assert isinstance(final, Answer) and all(isinstance(p, str) for p in items[:-1])
    assert final.backend.startswith("extractive (fallback from transformers)") and "6%" in "".join(items[:-1])


def test_missing_model_folder_is_a_clear_error(seeds_index, tmp_path):
    a = local_assistant(seeds_index, tmp_path / "nowhere")
    ans = a.ask(GDP_Q)
    assert ans.backend.startswith("extractive") and any("config.json missing" in r for r in ans.reasons)
    with pytest.raises(GeneratorError, match="config.json missing"):
        local_assistant(seeds_index, tmp_path / "nowhere", llm_fallback=False).ask(GDP_Q)


def test_hub_name_is_tried_and_fails_clearly_offline(tmp_path):
    """A hub name (not a folder) goes to the hub; offline that is a clear GeneratorError."""
    import os
    import subprocess
    import sys

    code = (
        "from qa_app.llm.transformers_backend import load_model\n"
        "from qa_app.llm.base import GeneratorError\n"
        "try:\n    load_model('example-org/not-a-real-model')\n"
        "except GeneratorError as e:\n    print('ERR', e.unavailable, e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    assert out.startswith("ERR True cannot load the model in example-org/not-a-real-model"), out
    # A path that does not exist is still reported as a missing folder, not sent to the hub.
    code2 = code.replace("example-org/not-a-real-model", str(tmp_path / "nope"))
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, env=env, timeout=120).stdout
    assert "no model folder at" in out2, out2


def test_chat_api_counts_with_the_models_own_tokenizer_and_passes_max_tokens(seeds_index, tiny_model, monkeypatch):
    from fastapi.testclient import TestClient

    from qa_app.api import create_app
    from qa_app.llm.transformers_backend import load_model

    tokenizer, model, _ = load_model(tiny_model)
    asked: list[int] = []
    generate = model.generate

    def recording(**kwargs):
        asked.append(kwargs["max_new_tokens"])
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", recording)
    a = local_assistant(seeds_index, tiny_model)
    client = TestClient(create_app(a.settings, a, with_ui=False))
    body = {"messages": [{"role": "system", "content": "简短回答。"}, {"role": "user", "content": GDP_Q}], "max_tokens": 5}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert asked == [5]  # the model was given the limit
    reply = r.json()
    content, usage = reply["choices"][0]["message"]["content"], reply["usage"]
    # Its own tokenizer counts, exactly: the count is not an estimate.
    assert usage["tokenizer"] == f"transformers:{tiny_model}" and usage["estimated"] is False
    assert usage["completion_tokens"] == len(tokenizer(content, add_special_tokens=False)["input_ids"]) <= 5
    assert reply["choices"][0]["finish_reason"] == "length"
    # The system message reached the model below the rules.
    prompt_ids = []
    monkeypatch.setattr(model, "generate", lambda **kw: prompt_ids.append(kw["input_ids"]) or generate(**kw))
    client.post("/v1/chat/completions", json={**body, "stream": True})
    text = tokenizer.decode(prompt_ids[0][0])
    assert "<提问者的要求>\n简短回答。\n</提问者的要求>" in text.split("<|im_end|>")[0]
