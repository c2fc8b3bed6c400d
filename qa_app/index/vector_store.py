"""Chroma as the dense index, with embeddings we compute ourselves.

No embedding function is attached to the collection, so Chroma never loads (or downloads)
its own default model. Embedded ``PersistentClient`` by default; an HTTP client when a
server host is configured.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import chromadb


class VectorStoreError(RuntimeError):
    pass


# How a chunk's vector is made (v2: the mean of its sentence vectors); part of the collection's
# name, so vectors made another way never share a collection.
VECTOR_RECIPE = "s2"


def _collection_name(base: str, model: str) -> str:
    # One collection per embedding model: switching models never mixes vector spaces.
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", model).strip("-._")[:40] or "default"
    return f"{base}-{slug}-{VECTOR_RECIPE}"


class ChromaStore:
    def __init__(self, settings, model_name: str):
        self.settings = settings
        chroma_settings = chromadb.Settings(anonymized_telemetry=False)
        if settings.chroma_host:
            try:
                self.client = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
                self.client.heartbeat()
            except Exception as exc:
                raise VectorStoreError(
                    f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc}); "
                    "start it with `chroma run`, or unset QA_CHROMA_HOST to use the embedded store"
                ) from exc
        else:
            path = Path(settings.resolved_data_dir()) / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        self.name = _collection_name(settings.chroma_collection, model_name)
        self.collection = self._open_collection()

    def _open_collection(self):
        return self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def reset(self) -> None:
        """Drop the collection and start it empty (the catalog and embedding cache can refill it)."""
        try:
            self.client.delete_collection(self.name)
        except Exception:  # noqa: BLE001 - a damaged or missing collection is what we are replacing
            pass
        self.collection = self._open_collection()

    def count(self) -> int:
        return self.collection.count()

    def all_ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    def ids_for_doc(self, doc_id: str) -> set[str]:
        return set(self.collection.get(where={"doc_id": doc_id}, include=[])["ids"])

    def upsert(self, ids: list[str], vectors: list[list[float]], metadatas: list[dict[str, Any]]) -> None:
        step = 2000  # stay under Chroma's max batch size
        for i in range(0, len(ids), step):
            self.collection.upsert(
                ids=ids[i : i + step], embeddings=vectors[i : i + step], metadatas=metadatas[i : i + step]
            )

    def delete(self, ids: list[str]) -> None:
        step = 2000
        for i in range(0, len(ids), step):
            self.collection.delete(ids=ids[i : i + step])

    def query(self, vector: list[float], k: int, where: dict[str, Any] | None = None) -> list[tuple[str, float]]:
        # No count() first: it cost 5 ms at 100k chunks, and Chroma already caps n_results
        # and answers an empty collection with no ids.
        res = self.collection.query(query_embeddings=[vector], n_results=k, where=where or None, include=["distances"])
        if not res["ids"] or not res["ids"][0]:
            return []
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0])]
