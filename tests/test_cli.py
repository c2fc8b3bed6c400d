"""The command line, run as a user runs it."""
import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import DEV_SET, ROOT


def run(args, data_dir, stdin=None):
    env = {**os.environ, "QA_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "qa_app.cli", *args], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )


def test_help_explains_the_commands(tmp_path):
    out = run(["--help"], tmp_path).stdout
    for cmd in ("ingest", "ask", "search", "eval", "documents", "run"):
        assert cmd in out


def test_ask_prints_answer_and_sources(seeds_index):
    out = run(["ask", "2023年海淀区地区生产总值增长了多少？"], seeds_index.data_dir)
    assert out.returncode == 0, out.stderr
    assert "6%" in out.stdout and "[1]" in out.stdout and "来源" in out.stdout


def test_ask_json_and_stdin_batch(seeds_index):
    out = run(["ask", "--json", "2019年海淀有多少支家庭医生团队？"], seeds_index.data_dir)
    data = json.loads(out.stdout)
    assert data["citations"] and data["refused"] is False and "653" in data["answer"]
    out = run(["ask"], seeds_index.data_dir, stdin="2024年海淀GDP增长多少？\n2025年海淀GDP增长多少？\n")
    assert "6.0%" in out.stdout and "没有" in out.stdout


def test_errors_are_clear(tmp_path, seeds_index):
    out = run(["ask", ""], seeds_index.data_dir)
    assert out.returncode == 1 and "empty" in out.stderr
    out = run(["ask", "测试"], tmp_path / "nothing")
    assert out.returncode == 1 and "ingest" in out.stderr
    out = run(["delete", "nope.txt"], seeds_index.data_dir)
    assert out.returncode == 1 and "no document" in out.stderr
    out = run(["ask", "--doc", "nope.txt", "地区生产总值"], seeds_index.data_dir)
    assert out.returncode == 1 and "no document nope.txt" in out.stderr
    out = run(["search", "-k", "-3", "地区生产总值"], seeds_index.data_dir)
    assert out.returncode == 2


def test_eval_writes_metrics(seeds_index, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(DEV_SET.read_text(encoding="utf-8").splitlines()[:8]) + "\n", encoding="utf-8")
    out = run(["eval", str(small), "--quiet", "--json", str(tmp_path / "r.json")], seeds_index.data_dir)
    assert out.returncode == 0, out.stderr
    assert "recall@5" in out.stdout and "answer_accuracy" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["metrics"]["n"] == 8 and len(report["items"]) == 8
