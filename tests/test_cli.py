"""The command line, run as a user runs it."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from .conftest import DEV_SET, ROOT

GDP_Q = "2023年海淀区地区生产总值增长了多少？"
FOLLOW_UP = "那2024年呢？"


def run(args, data_dir, stdin=None, **env_extra):
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), **env_extra}
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
    assert out.returncode == 1 and "ingest" in out.stderr and not (tmp_path / "nothing").exists()
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


# --- every message in one bilingual style; every option explained ------------------------------
def test_every_option_and_argument_of_every_command_has_help():
    import typer.main

    from qa_app.cli import app

    def walk(command, path):  # every command, sub-groups' commands included (`qa-app feedback export`)
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    commands = list(walk(typer.main.get_command(app), "qa-app"))
    missing = [f"{path} {param.name}" for path, command in commands for param in command.params
               if not (getattr(param, "help", None) or "").strip()]
    assert not missing, missing
    assert [path for path, command in commands if not (command.help or "").strip()] == []
    assert len(commands) >= 14  # the walk saw the commands (ingest … doctor)


@pytest.mark.parametrize("args, zh, en", [
    (["ask", "--nope", "x"], "没有这个选项：--nope", "No such option: --nope"),
    (["search", "-k", "-3", "地区生产总值"], "参数值无效：--k / -k", "Invalid value for '--k' / '-k'"),
    (["ask", "--year", "abc", "x"], "参数值无效：--year", "Invalid value for '--year'"),
    (["delete"], "缺少必需的参数：DOC_ID", "Missing argument"),
    (["frob"], "没有这个命令：frob", "No such command 'frob'"),
    (["ask", "a", "b"], "多余的参数", "Got unexpected extra argument"),
])
def test_usage_errors_are_said_in_both_languages(tmp_path, args, zh, en):
    out = run(args, tmp_path / "data")
    assert out.returncode == 2, out.stderr
    first, second = out.stderr.strip().splitlines()
    assert first.startswith("错误 error: ") and zh in first and f"({en}" in first
    assert "--help" in second and "用法见" in second
    assert "Traceback" not in out.stderr and "╭" not in out.stderr  # no rich error box either
    assert not (tmp_path / "data").exists()


# --- read-only commands create nothing ----------------------------------------------------------
@pytest.mark.parametrize("make_folder", [False, True], ids=["missing folder", "empty folder"])
def test_read_only_commands_on_an_empty_data_folder_create_nothing(tmp_path, make_folder):
    data = tmp_path / "data"
    if make_folder:
        data.mkdir()
    eval_set = tmp_path / "set.jsonl"
    eval_set.write_text(DEV_SET.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")

    def untouched():
        return (list(data.iterdir()) == []) if make_folder else not data.exists()

    for args in (["ask", GDP_Q], ["ask", "--local", GDP_Q], ["search", "地区生产总值"], ["eval", str(eval_set), "-q"]):
        out = run(args, data)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.startswith("错误 error: 索引为空") and "run `qa-app ingest` first" in out.stderr, out.stderr
        assert untouched(), (args, list(tmp_path.rglob("*")))
    out = run(["ask"], data, stdin=GDP_Q + "\n")  # the stdin conversation says it too, once per question
    assert "索引为空" in out.stderr and out.stdout == "" and untouched()
    out = run(["documents"], data)
    assert out.returncode == 0 and "还没有索引任何文档" in out.stdout and "no documents indexed yet" in out.stdout
    assert run(["documents", "--json"], data).stdout.strip() == "[]"
    out = run(["delete", "x.txt"], data)
    assert out.returncode == 1 and "no document 'x.txt'" in out.stderr
    out = run(["doctor"], data)
    assert out.returncode == 0 and "还没有索引" in out.stdout and "Nothing is indexed" in out.stdout
    assert untouched(), list(tmp_path.rglob("*"))


def test_doctor_names_a_lost_catalog_without_creating_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "sources.json").write_text('{"a.txt": "/nowhere/a.txt"}', encoding="utf-8")
    out = run(["doctor", "--json"], data)
    assert out.returncode == 1
    found = json.loads(out.stdout)["found"]
    assert [f["kind"] for f in found] == ["catalog_missing"] and found[0]["repairable"] is False
    out = run(["doctor"], data)
    assert out.returncode == 1 and "索引目录" in out.stdout and "is missing while the index's other files remain" in out.stdout
    assert "发现 1 个问题" in out.stdout and "run `qa-app doctor --repair`" in out.stdout
    assert sorted(p.name for p in data.iterdir()) == ["sources.json"]


def test_doctor_findings_are_bilingual():
    from qa_app.doctor import ERROR, Finding

    drift = Finding("orphan_vectors", ERROR, "3 vectors in Chroma belong to no catalog chunk", ["a", "b", "c"])
    assert drift.text() == "有 3 个向量不属于任何目录片段。(3 vectors in Chroma belong to no catalog chunk)"
    already = Finding("storage", ERROR, "索引目录损坏。(The catalog is damaged.)")
    assert already.text() == already.message  # the storage layer's messages are bilingual already


# --- a conversation at the prompt and on stdin ------------------------------------------------
def test_terminal_conversation_remembers_and_starts_over():
    from qa_app.terminal import HISTORY_TURNS, converse

    seen, news = [], []

    def answer(question, history):
        seen.append((question, history))
        return question != "bad"

    lines = ["a", "bad", "b", "/new", "c", *[f"q{i}" for i in range(HISTORY_TURNS + 2)]]
    converse(lines, answer, on_new=lambda: news.append(1))
    assert seen[:4] == [("a", None), ("bad", ["a"]), ("b", ["a"]), ("c", None)]  # an error is not remembered
    assert news == [1]
    assert len(seen[-1][1]) == HISTORY_TURNS and seen[-1][1][-1] == f"q{HISTORY_TURNS}"


def test_stdin_questions_are_one_conversation(seeds_index):
    """The follow-up is read with the question before it; after /new the same follow-up has no topic."""
    out = run(["ask", "--local"], seeds_index.data_dir, stdin=f"{GDP_Q}\n{FOLLOW_UP}\n/new\n{FOLLOW_UP}\n")
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.split("已开始新对话。(New conversation started.)")
    first, second = before.split("来源 Sources:", 1)[0], before.split("来源 Sources:", 1)[1]
    assert "6%" in first
    assert "6.0%" in second and "2024年国民经济和社会发展" in second  # the 2024 figure, from the 2024 report
    assert "6.0%" not in after and "没有" in after


def test_run_answers_follow_ups_too(seeds_index):
    out = run(["run"], seeds_index.data_dir, stdin=f"{GDP_Q}\n{FOLLOW_UP}\n")
    assert out.returncode == 0, out.stderr
    assert "5 unchanged" in out.stdout and "/new" in out.stdout  # the seeds checked, then the greeting
    assert "6%" in out.stdout and "6.0%" in out.stdout


# --- asking a running server --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(data_dir, **env_extra):
    """`qa-app serve` on a free loopback port until the block ends; yields its URL once it has
    written its record in the data folder."""
    from qa_app.server_file import record_path, running_server

    port = _free_port()
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "qa_app.cli", "serve", "--no-ingest", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while running_server(data_dir) is None:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # as Ctrl-C: a clean shutdown
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
    assert not record_path(data_dir).exists()  # the record goes with the server


# Runs the CLI in a process that then says whether the answer pipeline was ever loaded.
_PROBE = ("import sys\nfrom qa_app.cli import app\ncode = app(sys.argv[1:], standalone_mode=False)\n"
          "print('LOADED' if 'qa_app.answer' in sys.modules else 'NOT LOADED', code)")


def _ask_counting(args, data_dir, **env_extra):
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), **env_extra}
    return subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)


def _loaded(out) -> bool:
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith(("LOADED", "NOT LOADED")), out.stdout + out.stderr
    return last.startswith("LOADED")


def test_ask_uses_the_running_server_with_its_key(seeds_index):
    data = seeds_index.data_dir
    with _serving(data, QA_API_KEY="k-123") as (url, _proc):
        from qa_app.server_file import running_server

        assert running_server(data) == url
        out = _ask_counting(["ask", GDP_Q], data, QA_API_KEY="k-123")
        assert out.returncode == 0, out.stderr
        assert "6%" in out.stdout and "来源 Sources:" in out.stdout and _loaded(out) is False
        # follow-ups through the server carry the history too
        out = run(["ask"], data, stdin=f"{GDP_Q}\n{FOLLOW_UP}\n", QA_API_KEY="k-123")
        assert "6.0%" in out.stdout, out.stderr
        out = run(["ask", "--json", "--doc", "nope.txt", GDP_Q], data, QA_API_KEY="k-123")
        assert out.returncode == 1 and "Unknown document id(s): nope.txt" in out.stderr  # the server's error, said
        # Without the key the server refuses: said, and answered here instead.
        out = _ask_counting(["ask", GDP_Q], data, QA_API_KEY="")
        assert out.returncode == 0 and "6%" in out.stdout and _loaded(out) is True
        assert "注意 warning: " in out.stderr and "refused the API key" in out.stderr
        # --local answers here whatever runs
        out = _ask_counting(["ask", "--local", GDP_Q], data, QA_API_KEY="k-123")
        assert "6%" in out.stdout and _loaded(out) is True


def test_a_server_that_is_gone_is_passed_over(seeds_index, tmp_path):
    from qa_app.server_file import record_path, running_server, write_record

    # A record left by a killed server (its pid is gone): ignored, not deleted by a reader.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "d"
    folder.mkdir()
    write_record(folder, "http://127.0.0.1:9", pid=int(dead.stdout))
    assert running_server(folder) is None and record_path(folder).exists()
    # A live one is kept: a second server on the folder does not take the first one's record.
    write_record(folder, "http://127.0.0.1:1", pid=os.getpid())
    assert write_record(folder, "http://127.0.0.1:2", pid=os.getppid()) is None
    assert running_server(folder) == "http://127.0.0.1:1"
    # QA_SERVER_URL naming a server that does not answer: said, then answered in this process.
    out = run(["ask", GDP_Q], seeds_index.data_dir, QA_SERVER_URL=f"http://127.0.0.1:{_free_port()}")
    assert out.returncode == 0 and "6%" in out.stdout
    assert out.stderr.startswith("注意 warning: 无法连接服务器") and "Answering in this process instead" in out.stderr


def test_feedback_export_writes_the_page_s_ratings_as_an_eval_set(assistant, tmp_path):
    """`qa-app feedback export` turns what users rated on the page into items `qa-app eval` reads;
    with no ratings yet it says so and creates nothing."""
    from qa_app.eval.sets import load_eval_set
    from qa_app.feedback import Feedback, FeedbackStore

    out = tmp_path / "rated.jsonl"
    r = run(["feedback", "export", str(out)], tmp_path)
    assert r.returncode == 1 and "还没有任何评价" in r.stderr and "no ratings yet" in r.stderr
    assert not out.exists() and not (tmp_path / "feedback.sqlite3").exists()

    question = "2023年海淀区地区生产总值增长了多少？"
    answer = assistant.ask(question)
    FeedbackStore.in_data_dir(tmp_path).add(Feedback(
        "up", question, answer.text, citations=[c.to_dict() for c in answer.citations], owner="o" * 20))
    FeedbackStore.in_data_dir(tmp_path).add(Feedback("down", "学院路街道有哪些养老助餐点？", "…", owner="o" * 20))
    r = run(["feedback", "export", str(out)], tmp_path)
    assert r.returncode == 0 and "1" in r.stdout, r.stderr
    [item] = load_eval_set(out)
    assert item.question == question and item.answerable and "6%" in item.answer_keys
    r = run(["feedback", "export", "--disliked", str(out)], tmp_path)
    assert r.returncode == 0 and len(load_eval_set(out)) == 2
