"""What a catalog is, whichever database holds it, and which one a setting chooses.

The catalog is the index's source of truth: documents, their chunks with token lists, the
embedding cache, a few state flags, and a change log numbered by versions (``Index`` reloads
only the documents the log names since its last view). ``IndexCatalog`` is the contract
``Index``, ingest, ``doctor`` and the API rely on; ``tests/test_pg_catalog.py`` runs one set of
contract tests against every implementation.

Backends, by the scheme of ``QA_CATALOG_URL`` (empty: SQLite in the data folder):
- ``catalog.py`` — SQLite, one file beside the embedded vector store (the default);
- ``pg_catalog.py`` — PostgreSQL, shared by API processes on any number of machines.
A new backend is one module with a class following ``IndexCatalog`` plus one line in ``CATALOGS``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from importlib import import_module
from pathlib import Path
from typing import ClassVar, Protocol
from urllib.parse import urlsplit

from qa_app.models import Chunk, DocumentInfo

# URL scheme -> "module:Class". The empty scheme is the default: SQLite in the data folder.
CATALOGS: dict[str, str] = {
    "": "qa_app.index.catalog:Catalog",
    "postgresql": "qa_app.index.pg_catalog:PgCatalog",
    "postgres": "qa_app.index.pg_catalog:PgCatalog",
}


class WriterLockLike(Protocol):
    """One writer at a time: ``lock.WriterLock`` (a file) or ``pg_lock.PgWriterLock`` (the server)."""

    @property
    def held_here(self) -> bool: ...

    def holder(self) -> dict: ...

    def is_held_elsewhere(self) -> bool: ...

    def hold(self, purpose: str, on_wait: Callable[[str], None],
             timeout: float | None = None) -> AbstractContextManager[bool]: ...


class IndexCatalog(Protocol):
    """Failures about the storage (a damaged file, a server that is down, a read-only folder)
    are ``StorageError``s naming where the catalog is; statement errors stay what they are."""

    # True when the catalog is a server others write to: each version check is a round trip,
    # so ``Index`` asks at most every ``index_refresh_s``.
    remote: ClassVar[bool]
    writable: bool

    # --- how it is found, opened and locked ----------------------------------------------------
    @classmethod
    def open(cls, settings, data_dir: Path, *, read_only: bool,
             has_vectors: Callable[[], bool] | None = None) -> "IndexCatalog":
        """Open (creating what is missing when writable). ``has_vectors`` tells whether the vector
        store holds vectors, so an emptied catalog beside them is damage, not a new index."""
        ...

    @classmethod
    def local_files(cls, settings, data_dir: Path) -> list[Path]:
        """The catalog's own files in the data folder (a read-only check and a repair concern them)."""
        ...

    @classmethod
    def writer_lock(cls, settings, data_dir: Path) -> WriterLockLike:
        """The lock every write holds: it must exclude writers everywhere this catalog is reachable from."""
        ...

    @classmethod
    def exists(cls, settings, data_dir: Path) -> bool:
        """Whether anything was ever indexed there, asked without creating anything."""
        ...

    @classmethod
    def location(cls, settings, data_dir: Path) -> str:
        """Where the catalog is, for messages (never with a password), asked without opening it."""
        ...

    def where(self) -> str:
        """``location`` of this open catalog."""
        ...

    # --- documents -------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]: ...
    def sources(self) -> dict[str, str]: ...
    def unscoped_documents(self) -> set[str]: ...
    def document_sha(self, doc_id: str) -> str | None: ...
    def documents_with_sha(self, sha256: str) -> list[DocumentInfo]: ...
    def document_info(self, doc_id: str) -> DocumentInfo | None: ...
    def chunk_ids(self, doc_id: str | None = None) -> list[str]: ...

    def replace_document(self, doc: DocumentInfo, chunks: list[Chunk], tokens: list[list[str]], when: str) -> None: ...

    def replace_documents(self, docs: list[tuple[DocumentInfo, list[Chunk], list[list[str]]]], when: str) -> None:
        """Swap documents' chunks in one transaction (readers see old or new, never half), then a new version."""
        ...

    def set_source_path(self, doc_id: str, source_path: str) -> None: ...
    def delete_document(self, doc_id: str) -> list[str]: ...

    # --- chunks ------------------------------------------------------------------------------------
    def all_chunks(self, tokens: bool = True) -> tuple[list[Chunk], list[list[str]]]:
        """Every chunk ordered by document id (code-point order) then ordinal, with token lists."""
        ...

    def document_chunks(self, doc_ids: Iterable[str]) -> tuple[list[Chunk], list[list[str]]]: ...
    def chunks(self, chunk_ids: Iterable[str]) -> list[Chunk]: ...
    def count_chunks(self) -> int: ...
    def chunk_counts(self) -> dict[str, int]:
        """How many chunks each document has, by document id."""
        ...

    def unreadable_tokens(self) -> list[str]: ...
    def set_tokens(self, tokens_by_id: dict[str, list[str]]) -> None: ...
    def chunk_count_mismatches(self) -> dict[str, tuple[int, int]]: ...

    def integrity_problem(self) -> str | None:
        """The storage's own check of its pages; None when sound (or when the server keeps that)."""
        ...

    # --- flags, versions, the change log ---------------------------------------------------------
    def get_flag(self, key: str) -> str | None: ...
    def set_flag(self, key: str, value: str | None) -> None: ...
    def version(self) -> int: ...
    def identity(self) -> str | None: ...

    def changed_between(self, old: int, new: int) -> set[str] | None:
        """Documents changed after ``old`` up to ``new``; None when the log cannot say (reload all)."""
        ...

    def start_version_at(self, version: int) -> None: ...

    # --- embedding cache ---------------------------------------------------------------------------
    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, list[float]]: ...
    def cache_vectors(self, model: str, items: dict[str, list[float]]) -> None: ...
    def cache_blobs(self, rows: list[tuple[str, str, bytes]]) -> None: ...
    def count_cached(self) -> int: ...

    def close(self) -> None: ...


def scheme_of(url: str | None) -> str:
    return urlsplit(url).scheme.lower() if url and "://" in url else ""


def check_catalog_url(url: str) -> None:
    """A ValueError (for the settings) when no backend takes this URL."""
    scheme = scheme_of(url)
    if not scheme or scheme not in CATALOGS:
        known = ", ".join(sorted(s for s in CATALOGS if s))
        raise ValueError(f"{redact(url)!r} is not a catalog URL this app knows (schemes: {known}; "
                         "e.g. postgresql://qa@127.0.0.1:5432/qa; empty: SQLite in data_dir)")


def catalog_url(settings) -> str:
    """The configured catalog URL ("" for SQLite in the data folder), password included: for connecting only."""
    secret = getattr(settings, "catalog_url", None)
    return secret.get_secret_value() if secret is not None else ""


def catalog_class(settings) -> type[IndexCatalog]:
    module, _, name = CATALOGS[scheme_of(catalog_url(settings))].partition(":")
    return getattr(import_module(module), name)


def redact(url: str) -> str:
    """A URL as it may be shown: the password (in the authority or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<catalog URL>"
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join("password=***" if q.lower().startswith("password=") else q for q in parts.query.split("&") if q)
    return parts._replace(netloc=netloc, query=query).geturl()

