"""``transformers``: a local causal LM from a folder, run in-process on the CPU.

``QA_LLM_MODEL`` is the folder (``config.json``, weights, tokenizer with a chat template,
e.g. a downloaded Qwen2.5-0.5B-Instruct), or a hub name on a machine that can download. The model is loaded once per folder and shared;
the prompt goes through the tokenizer's chat template; generation is greedy unless
``QA_LLM_TEMPERATURE`` > 0, at most ``QA_LLM_MAX_TOKENS`` new tokens and ``QA_LLM_TIMEOUT``
seconds. When the passages do not fit the model's context, the lowest-ranked are left out.
Needs the ``local`` extra (transformers, tokenizers).
"""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Iterator

from qa_app.llm.base import BackendOptions, ChatGenerator, GeneratorError
from qa_app.models import Passage
from qa_app.question import QuestionAnalysis

_MODELS: dict[str, tuple] = {}  # resolved folder → (tokenizer, model, lock)
_LOAD_LOCK = threading.Lock()


_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_model(folder: str | Path) -> tuple:
    """(tokenizer, model, lock) for a model folder — or a hub name such as
    ``Qwen/Qwen2.5-0.5B-Instruct`` where the hub is reachable — loaded once per process."""
    path = Path(folder).expanduser()
    hub = not path.exists() and bool(_HUB_NAME.match(str(folder)))
    if not hub and not (path / "config.json").is_file():
        raise GeneratorError(f"no model folder at {path} (config.json missing): set QA_LLM_MODEL to a local model folder", unavailable=True)
    key = str(folder) if hub else str(path.resolve())
    with _LOAD_LOCK:
        if key not in _MODELS:
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:  # pragma: no cover - the local extra is missing
                raise GeneratorError("the transformers backend needs the local extra: pip install 'qa_app[local]'", unavailable=True) from exc
            try:
                # A folder never triggers a download; a hub name downloads once into the HF cache.
                tokenizer = AutoTokenizer.from_pretrained(key, local_files_only=not hub)
                model = AutoModelForCausalLM.from_pretrained(key, local_files_only=not hub, dtype=torch.float32)
            except Exception as exc:  # noqa: BLE001
                raise GeneratorError(f"cannot load the model in {path}: {type(exc).__name__}: {str(exc)[:200]}", unavailable=True) from exc
            if not getattr(tokenizer, "chat_template", None):
                raise GeneratorError(f"the tokenizer in {path} has no chat template (an instruction-tuned model is needed)", unavailable=True)
            model.eval()
            _MODELS[key] = (tokenizer, model, threading.Lock())
    return _MODELS[key]


class TransformersOptions(BackendOptions):
    model: str | None = None  # a local model folder (or a hub name where the hub is reachable)
    timeout: float = 60.0
    temperature: float = 0.1
    max_tokens: int = 512


class TransformersGenerator(ChatGenerator):
    name = "transformers"
    Options = TransformersOptions
    options: TransformersOptions

    @classmethod
    def readiness(cls, settings) -> tuple[bool, str]:
        o = cls.Options.from_settings(settings)
        if not o.model:
            return False, "not configured: set QA_LLM_MODEL to a local model folder"
        folder = Path(o.model).expanduser()
        if not (folder / "config.json").is_file():
            return False, f"no model folder at {folder} (config.json missing)"
        return True, f"model folder {folder}"

    def _loaded(self) -> tuple:
        if not self.options.model:
            raise GeneratorError("QA_LLM_MODEL is not set: point it at a local model folder", unavailable=True)
        return load_model(self.options.model)

    def tokenizer(self):
        """The model's own tokenizer (the model is loaded on first use): the API counts usage with it."""
        return self._loaded()[0]

    def encode(self, messages: list[dict]):
        tokenizer, _, _ = self._loaded()
        try:
            enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        except Exception as exc:  # noqa: BLE001
            raise GeneratorError(f"the chat template failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _context(self) -> int | None:
        tokenizer, model, _ = self._loaded()
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if tok_limit and tok_limit < 10**8:
            limit = min(limit, tok_limit) if limit else tok_limit
        return limit

    def prepare(self, question: QuestionAnalysis, passages: list[Passage], instructions: str = "",
                max_tokens: int | None = None) -> tuple[list[dict], list[Passage]]:
        given = passages[: self.settings.answer_passages]
        limit = self._context()
        room = max_tokens or self.options.max_tokens
        while True:
            messages = self.messages(question, given, instructions)
            if not limit:
                return messages, given
            length = self.encode(messages)["input_ids"].shape[1]
            if length + room <= limit:
                return messages, given
            if len(given) <= 1:
                raise GeneratorError(f"the prompt ({length} tokens) and {room} new tokens do not fit the model's context of {limit} tokens")
            given = given[:-1]

    def generate_kwargs(self, enc, max_tokens: int | None) -> dict:
        tokenizer, _, _ = self._loaded()
        temperature = self.options.temperature
        kwargs = dict(
            enc,
            max_new_tokens=max_tokens or self.options.max_tokens,
            max_time=self.options.timeout,
            do_sample=temperature > 0,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        if temperature > 0:
            kwargs["temperature"] = temperature
        return kwargs

    def chat(self, messages: list[dict], max_tokens: int | None = None) -> str:
        import torch

        tokenizer, model, lock = self._loaded()
        enc = self.encode(messages)
        try:
            with lock, torch.inference_mode():
                out = model.generate(**self.generate_kwargs(enc, max_tokens))
        except Exception as exc:  # noqa: BLE001
            raise GeneratorError(f"generation failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    def chat_stream(self, messages: list[dict], max_tokens: int | None = None) -> Iterator[str]:
        import queue

        import torch
        from transformers import TextIteratorStreamer

        tokenizer, model, lock = self._loaded()
        enc = self.encode(messages)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.options.timeout)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with lock, torch.inference_mode():
                    model.generate(**self.generate_kwargs(enc, max_tokens), streamer=streamer)
            except Exception as exc:  # noqa: BLE001
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="qa-transformers-generate", daemon=True)
        worker.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        except queue.Empty:
            raise GeneratorError(f"the local model produced nothing for {self.options.timeout:g} s (QA_LLM_TIMEOUT)") from None
        worker.join(timeout=self.options.timeout)
        if failure:
            exc = failure[0]
            raise GeneratorError(f"generation failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
