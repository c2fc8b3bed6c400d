"""Throw-away PostgreSQL and Chroma servers on 127.0.0.1, for the tests and bench/load.py.

    with local_postgres(work) as url, local_chroma(work) as port: ...

PostgreSQL: Debian's binaries (``make postgres`` installs them), a new cluster in a temporary
folder with ``initdb``, ``postgres`` on a free port (no Unix socket outside that folder),
superuser ``qa`` with a password for TCP logins, database ``qa``; stopped with a fast
shutdown and removed at the end. PostgreSQL refuses to run as root, so as root the cluster
belongs to, and the server runs as, the unprivileged ``postgres`` user (else ``nobody``).
Chroma: ``chroma run`` from the chromadb package, as ``tests/test_chroma_server.py`` starts it.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "qa-local-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of initdb and postgres: on PATH, else the newest Debian version's."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _run_as() -> str | None:
    """The user to run PostgreSQL as: None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening on {port}\n{tail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not listening on {port} after {timeout:.0f} s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def local_postgres(parent: Path | None = None) -> Iterator[str]:
    """A running PostgreSQL; yields the catalog URL (postgresql://qa:<password>@127.0.0.1:<port>/qa)."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's binaries (initdb, postgres) are not installed: run `make postgres`")
    user = _run_as()
    # Not under pytest's tmp_path: that folder is root's alone, and the server runs as another user.
    work = Path(tempfile.mkdtemp(prefix="qa_pg_", dir=parent))
    os.chmod(work, 0o755)
    data, log, pwfile = work / "data", work / "postgres.log", work / "pw"
    pwfile.write_text(PASSWORD)
    as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    if user:
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
        for p in (work, pwfile):
            os.chown(p, uid, gid)
    env = {**os.environ, "LC_ALL": "C", "HOME": str(work)}
    subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "qa", f"--pwfile={pwfile}", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, env=env, cwd=work, **as_user)
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(work),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=100"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, **as_user)
    try:
        _wait_port(port, proc, 60, "postgres", log)
        url = f"postgresql://qa:{PASSWORD}@127.0.0.1:{port}/qa"
        _create_database(f"postgresql://qa:{PASSWORD}@127.0.0.1:{port}/postgres", "qa")
        yield url
    finally:
        _stop(proc, signal.SIGINT)  # "fast" shutdown: open sessions are ended, not waited for
        shutil.rmtree(work, ignore_errors=True)


def _create_database(admin_url: str, name: str) -> None:
    import psycopg

    deadline = time.time() + 30
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
                return
        except psycopg.OperationalError:  # listening, not yet accepting ("the database system is starting up")
            if time.time() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def local_chroma(parent: Path | None = None) -> Iterator[int]:
    """A running ``chroma run``; yields its port."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        raise FileNotFoundError("the chroma command ships with the chromadb package")
    work = Path(tempfile.mkdtemp(prefix="qa_chroma_", dir=parent))
    port = free_port()
    proc = subprocess.Popen([str(exe), "run", "--path", str(work / "server"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        _wait_port(port, proc, 60, "chroma run")
        yield port
    finally:
        _stop(proc)
        shutil.rmtree(work, ignore_errors=True)
