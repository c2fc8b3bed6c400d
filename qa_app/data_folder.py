"""What a data folder holds, asked without opening (and so creating) the index in it."""
from __future__ import annotations

from pathlib import Path

# The index's catalog file: qa_app/index/store.py opens it, creating it when it is missing.
CATALOG_FILE = "catalog.sqlite"


def index_exists(settings) -> bool:
    """Whether anything was ever indexed in the settings' data folder (or the server catalog it names)."""
    from qa_app.index.catalog_api import catalog_class

    return catalog_class(settings).exists(settings, settings.resolved_data_dir())


def empty_index_message(data_dir: Path) -> str:
    return (f"索引为空：{data_dir} 中还没有索引，请先运行 `qa-app ingest`。"
            f"(The index is empty: nothing is indexed in {data_dir} yet; run `qa-app ingest` first.)")
