"""Chroma as the dense index, with embeddings we compute ourselves.

No embedding function is attached to the collection, so Chroma never loads (or downloads)
its own default model. Embedded ``PersistentClient`` by default; an HTTP client when a
server host is configured.

Chroma's own failures (a damaged ``chroma.sqlite3`` or segment, a server that went away)
leave this module as ``StorageError``s naming the store. The embedded client cannot open
a store it may not write to (it migrates and locks its database at start), so a read-only
data folder is refused here and ``Index`` answers dense queries from its embedding cache.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import chromadb
from chromadb.errors import ChromaError

from qa_app.index.errors import UNAVAILABLE, StorageError, vectors_damaged

log = logging.getLogger(__name__)


class VectorStoreError(StorageError):
    """The Chroma server cannot be reached (a StorageError, so callers handle both alike)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, kind=UNAVAILABLE, path=path)


# How a chunk's vector is made (v2: the mean of its sentence vectors); part of the collection's
# name, so vectors made another way never share a collection.
VECTOR_RECIPE = "s2"


class VectorStore(Protocol):
    """Where the chunk vectors live. ``Index`` keeps it in step with the catalog (vectors first,
    then the catalog, then a sweep) and trusts only chunk ids the catalog lists; a store only
    stores, finds and forgets. Failures leave a store as ``StorageError`` (``kind`` damaged,
    read_only or unavailable). A new store is one class plus one line in ``STORES`` (or an entry
    point in the ``qa_app.vector_stores`` group), chosen by ``QA_VECTOR_STORE``."""

    def __init__(self, settings, model_name: str) -> None:
        """Open (or create) the store for vectors of ``model_name``: vectors of different models never mix."""
        ...

    def count(self) -> int: ...

    def all_ids(self) -> set[str]: ...

    def doc_ids(self) -> set[str]:
        """The documents any stored vector belongs to (a repair reads them when the catalog is lost)."""
        ...

    def ids_for_docs(self, doc_ids: list[str]) -> set[str]: ...

    def upsert(self, ids: list[str], vectors: list[list[float]], metadatas: list[dict[str, Any]]) -> None:
        """Each metadata holds the chunk's ``doc_id``, ``year``, ``ordinal`` and ``kind``."""
        ...

    def delete(self, ids: list[str]) -> None: ...

    def query(self, vector: list[float], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest chunk ids with their cosine similarity, best first; only chunks of
        ``doc_ids`` when given."""
        ...

    def reset(self) -> None:
        """Empty the store (the catalog and the embedding cache refill it)."""
        ...

    def close(self) -> None: ...

    @classmethod
    def local_folder(cls, settings) -> Path | None:
        """The store's folder when it keeps files in the data folder (so a read-only folder, a
        repair that moves damaged files aside, and a rebuild concern it), else None."""
        ...

    @classmethod
    def forget(cls, settings) -> None:
        """Drop whatever this process caches about the local folder, before it is moved aside."""
        ...

    @classmethod
    def holds_vectors(cls, settings) -> bool:
        """Whether the local folder holds vectors, read without opening the store for writing
        (a zero-byte catalog beside stored vectors is damage, not a new index)."""
        ...


def _collection_name(base: str, model: str) -> str:
    # One collection per embedding model: switching models never mixes vector spaces.
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", model).strip("-._") or "default"
    if len(slug) > 40:
        # Shortened, two long names (…-instruct, …-instruct-v2) would share one collection: the
        # full name's hash keeps them apart. Names of 40 characters or less keep their collection.
        slug = f"{slug[:40]}-{hashlib.sha1(model.encode('utf-8')).hexdigest()[:8]}"
    return f"{base}-{slug}-{VECTOR_RECIPE}"


def embedded_path(settings) -> Path:
    return Path(settings.resolved_data_dir()) / "chroma"


def stored_vectors_exist(folder: Path) -> bool:
    """Whether an embedded store holds any vector, read straight from its SQLite file (no client,
    no writes). Unknown (no store, or one that cannot be read) counts as no."""
    from qa_app.index.catalog import open_sqlite_readonly

    db_file = folder / "chroma.sqlite3"
    if not db_file.is_file():
        return False
    try:
        db = open_sqlite_readonly(db_file, timeout=1.0)
        try:
            return db.execute("SELECT 1 FROM embeddings LIMIT 1").fetchone() is not None
        finally:
            db.close()
    except sqlite3.Error:
        return False


def forget_embedded(path: Path) -> None:
    """Make this process's next client for ``path`` open the files afresh.

    Chroma shares one engine per path among all clients of a process; after the folder was
    moved aside, that engine would keep writing into the moved files.
    """
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        system = SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)
        if system is not None:
            system.stop()
    except Exception:  # best effort: a damaged engine may fail to stop
        log.debug("could not stop Chroma's engine for %s", path, exc_info=True)


def _guarded(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StorageError:
            raise
        except Exception as exc:  # classified below; a plain bug in our call stays loud
            raise self.failure(exc) from exc

    return wrapper


class ChromaStore:
    def __init__(self, settings, model_name: str):
        self.settings = settings
        self.path: Path | None = None
        chroma_settings = chromadb.Settings(anonymized_telemetry=False)
        if settings.chroma_host:
            try:
                self.client = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
                self.client.heartbeat()
            except Exception as exc:
                raise VectorStoreError(
                    f"无法连接向量服务器 {settings.chroma_host}:{settings.chroma_port}。"
                    f"(cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} ({exc}); "
                    "start it with `chroma run`, or unset QA_CHROMA_HOST to use the embedded store)"
                ) from exc
        else:
            self.path = embedded_path(settings)
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
            except Exception as exc:  # whatever stops the store from opening is the finding
                raise self.failure(exc, opening=True) from exc
        self.name = _collection_name(settings.chroma_collection, model_name)
        try:
            self.collection = self._open_collection()
        except StorageError:
            raise
        except Exception as exc:  # a store whose collection cannot be opened is damaged
            raise self.failure(exc, opening=True) from exc

    def failure(self, exc: BaseException, opening: bool = False) -> StorageError:
        """The StorageError for a failed Chroma call: a damaged embedded store, or an unreachable server."""
        if not opening and isinstance(exc, (TypeError, ValueError, KeyError, AttributeError)) and not isinstance(
            exc, ChromaError
        ):
            raise exc  # our own mistake in a call, not the store's state
        detail = f"{type(exc).__name__}: {exc}"
        if self.path is None:
            return VectorStoreError(
                f"向量服务器出错：{self.settings.chroma_host}:{self.settings.chroma_port}（{detail}）。"
                f"(The Chroma server at {self.settings.chroma_host}:{self.settings.chroma_port} failed: {detail}.)"
            )
        if isinstance(exc, PermissionError) or "readonly" in str(exc).lower():
            from qa_app.index.errors import read_only

            return read_only(self.path.parent, f"the vector store {self.path} cannot be written: {exc}")
        return vectors_damaged(self.path, detail)

    @_guarded
    def _open_collection(self):
        return self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    @_guarded
    def reset(self) -> None:
        """Drop the collection and start it empty (the catalog and embedding cache can refill it)."""
        try:
            self.client.delete_collection(self.name)
        except Exception:  # a damaged or missing collection is what we are replacing
            log.debug("dropping the collection %s failed", self.name, exc_info=True)
        self.collection = self._open_collection()

    @_guarded
    def count(self) -> int:
        return self.collection.count()

    @_guarded
    def all_ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])

    @_guarded
    def doc_ids(self) -> set[str]:
        """The documents the stored vectors belong to (their metadata's doc_id)."""
        metadatas = self.collection.get(include=["metadatas"])["metadatas"] or []
        return {str(m["doc_id"]) for m in metadatas if m and m.get("doc_id")}

    @_guarded
    def ids_for_docs(self, doc_ids: list[str]) -> set[str]:
        out: set[str] = set()
        step = 500  # a filter naming thousands of documents at once is slow in Chroma's SQL
        for i in range(0, len(doc_ids), step):
            part = doc_ids[i : i + step]
            where = {"doc_id": part[0]} if len(part) == 1 else {"doc_id": {"$in": part}}
            out.update(self.collection.get(where=where, include=[])["ids"])
        return out

    @_guarded
    def upsert(self, ids: list[str], vectors: list[list[float]], metadatas: list[dict[str, Any]]) -> None:
        step = 2000  # stay under Chroma's max batch size
        for i in range(0, len(ids), step):
            self.collection.upsert(
                ids=ids[i : i + step], embeddings=vectors[i : i + step], metadatas=metadatas[i : i + step]
            )

    @_guarded
    def delete(self, ids: list[str]) -> None:
        step = 2000
        for i in range(0, len(ids), step):
            self.collection.delete(ids=ids[i : i + step])

    @_guarded
    def query(self, vector: list[float], k: int, doc_ids: set[str] | None = None) -> list[tuple[str, float]]:
        # No count() first: it cost 5 ms at 100k chunks, and Chroma already caps n_results
        # and answers an empty collection with no ids.
        where = {"doc_id": {"$in": sorted(doc_ids)}} if doc_ids is not None else None
        res = self.collection.query(query_embeddings=[vector], n_results=k, where=where, include=["distances"])
        if not res["ids"] or not res["ids"][0]:
            return []
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0])]

    @classmethod
    def local_folder(cls, settings) -> Path | None:
        return None if settings.chroma_host else embedded_path(settings)

    @classmethod
    def forget(cls, settings) -> None:
        folder = cls.local_folder(settings)
        if folder is not None:
            forget_embedded(folder)

    @classmethod
    def holds_vectors(cls, settings) -> bool:
        folder = cls.local_folder(settings)
        return folder is not None and stored_vectors_exist(folder)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a damaged store must not hide why it is closed
            log.debug("closing the Chroma client failed", exc_info=True)


# --- the stores by name ---------------------------------------------------------------------------
STORE_GROUP = "qa_app.vector_stores"
STORES: dict[str, str] = {"chroma": "qa_app.index.vector_store:ChromaStore"}


def store_class(name: str) -> type[VectorStore]:
    """The vector store's class: built in, or a plugin's (an entry point in ``qa_app.vector_stores``)."""
    from importlib import import_module
    from importlib.metadata import entry_points

    found = dict(STORES)
    for ep in entry_points(group=STORE_GROUP):
        found.setdefault(ep.name, ep.value)
    if name not in found:
        raise ValueError(f"unknown vector store {name!r}; available: {', '.join(sorted(found))} (QA_VECTOR_STORE)")
    module, _, cls = found[name].partition(":")
    return getattr(import_module(module), cls)
