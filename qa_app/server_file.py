"""The record a running ``qa-app serve`` keeps in its data folder (``server.json``: URL and pid),
so that ``qa-app ask`` on the same folder can use the warm server instead of loading the models.

Written once the server listens, removed when it stops; a record left by a killed server is
recognised by its dead pid and ignored (a reader never deletes or writes anything: reading is
what read-only commands do). Standard library only: the fast path must not import the models.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qa_app.index.lock import pid_alive

RECORD_NAME = "server.json"


def record_path(data_dir: Path) -> Path:
    return Path(data_dir) / RECORD_NAME


def client_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``: a wildcard bind
    (all interfaces) is reached on loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:  # an IPv6 literal goes in brackets
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write_record(data_dir: Path, url: str, pid: int | None = None) -> Path | None:
    """Write the record atomically (a reader never sees half a file). A live server's record is
    kept (None is returned): the first server on a folder is the one ``ask`` uses, and a second
    one failing to start on a taken port must not take the record with it when it exits."""
    path = record_path(data_dir)
    if running_server(data_dir) is not None:
        return None
    body = {"url": url, "pid": pid if pid is not None else os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_record(data_dir: Path, pid: int | None = None) -> None:
    """Remove the record if it is this process's (a second server on the folder may have replaced it)."""
    path = record_path(data_dir)
    pid = pid if pid is not None else os.getpid()
    info = _read(path)
    if info is not None and info.get("pid") == pid:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def running_server(data_dir: Path) -> str | None:
    """The URL of the live server recorded in ``data_dir``, or None (no record, unreadable, or
    left by a server that is no longer running)."""
    info = _read(record_path(data_dir))
    if info is None:
        return None
    pid, url = info.get("pid"), info.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not url.startswith("http") or not pid_alive(pid):
        return None
    return url


def _read(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
