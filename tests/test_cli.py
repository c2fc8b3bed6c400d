"""The command line, run as a user runs it."""
import json
import os
import subprocess
import sys

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
    assert out.returncode == 1 and "Unknown document id(s): nope.txt" in out.stderr  # the API's words too
    out = run(["search", "-k", "-3", "地区生产总值"], seeds_index.data_dir)
    assert out.returncode == 2


METRIC_KEYS = {"recall@1", "recall@5", "recall@10", "mrr", "answer_accuracy", "refusal_accuracy", "false_refusal_rate",
               "citation_precision", "grounded_rate", "answer_chars_median", "latency_p50_ms", "latency_p95_ms", "n"}


def _small_set(tmp_path, n=8):
    """The first dev items plus one unanswerable, with an extra field the evaluator does not know."""
    lines = DEV_SET.read_text(encoding="utf-8").splitlines()
    picked = [json.loads(x) for x in lines[:n - 1]] + [next(json.loads(x) for x in lines if '"unanswerable"' in x)]
    picked[0]["reviewer"] = "h3"
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in picked), encoding="utf-8")
    return small


def test_eval_writes_metrics_json_and_report(seeds_index, tmp_path):
    small = _small_set(tmp_path)
    out = run(["eval", str(small), "--quiet", "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "rep")],
              seeds_index.data_dir)
    assert out.returncode == 0, out.stderr
    assert "recall@5" in out.stdout and "answer_accuracy" in out.stdout and "| category |" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert set(report["metrics"]) == METRIC_KEYS and report["metrics"]["n"] == 8 and len(report["items"]) == 8
    assert report["run"]["backend"] == "extractive" and report["run"]["top_k"] == 10
    assert report["run"]["embedding_model"] and report["run"]["date"] and "git_commit" in report["run"]
    first = report["items"][0]
    assert first["reviewer"] == "h3" and first["file"] == "small.jsonl" and len(first["retrieved"]) == 5
    assert report["by_category"]["unanswerable"]["recall@5"] is None
    assert report["metrics"]["refusal_accuracy"] == 1.0  # the dev set's unanswerable items are all refused
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "<td>recall@5</td>" in page and "data:image/png;base64," in page
    # a finished run leaves no checkpoint behind: the next run measures afresh
    assert not list(tmp_path.glob("*.checkpoint.jsonl"))


def test_eval_rejects_unknown_backend(seeds_index, tmp_path):
    out = run(["eval", str(DEV_SET), "--backend", "nope"], seeds_index.data_dir)
    assert out.returncode == 1 and "unknown backend 'nope'" in out.stderr and "extractive" in out.stderr


def test_eval_interrupted_then_resumed(seeds_index, tmp_path, monkeypatch):
    """Ctrl-C after three items (raised where the fourth would run); the same command then runs the
    other five only and ends with the same results as a clean run."""
    from typer.testing import CliRunner

    import qa_app.eval.runner as ev
    from qa_app.cli import app

    small = _small_set(tmp_path)
    real_run_item = ev.run_item
    calls = []

    def counting(item, assistant, top_k):
        calls.append(item.id)
        if interrupt_at and len(calls) >= interrupt_at:  # Ctrl-C: nothing after it finishes
            raise KeyboardInterrupt
        return real_run_item(item, assistant, top_k)

    monkeypatch.setattr(ev, "run_item", counting)
    args = ["eval", str(small), "--quiet", "--data-dir", str(seeds_index.data_dir), "--json", str(tmp_path / "r.json")]
    runner = CliRunner()

    interrupt_at = 4
    out = runner.invoke(app, args)
    assert out.exit_code == 130
    assert "3 of 8 items done" in out.output and "again to resume" in out.output
    assert len((tmp_path / "r.json.checkpoint.jsonl").read_text(encoding="utf-8").splitlines()) == 3

    interrupt_at, calls[:] = None, []
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "resuming: 3 of 8" in out.output and len(calls) == 5
    resumed = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))

    calls[:] = []
    out = runner.invoke(app, [*args, "--fresh"])
    assert out.exit_code == 0 and len(calls) == 8
    clean = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))

    def stable(doc):
        return [{k: v for k, v in i.items() if k != "latency_ms"} for i in doc["items"]]

    assert stable(resumed) == stable(clean)
    assert {k: v for k, v in resumed["metrics"].items() if "latency" not in k} == \
        {k: v for k, v in clean["metrics"].items() if "latency" not in k}


def test_a_misspelt_setting_is_named_with_the_nearest_valid_one(tmp_path):
    from qa_app.config import Settings

    toml = tmp_path / "qa_app.toml"
    toml.write_text('top_k = 3\nsentense_model = "off"\n', encoding="utf-8")
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path), "QA_CONFIG": str(toml)}
    out = subprocess.run([sys.executable, "-m", "qa_app.cli", "documents"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 2
    assert "unknown setting 'sentense_model'" in out.stderr and "did you mean 'sentence_model'" in out.stderr
    toml.write_text('top_k = 3\nsentence_model = "off"\n', encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "qa_app.cli", "documents"], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    # QA_* variables that are not settings (QA_CONFIG itself) are not errors.
    assert Settings(top_k=4).top_k == 4
