"""The eval report (report.md, self-contained report.html) and eval-diff, on hand-built results."""
import base64
import json
import re

import pytest

from qa_app.eval.diff import diff, format_diff
from qa_app.eval.report import failure_kinds, highlight, write_report
from qa_app.eval.checkpoint import results_document

from .test_cli import run
from .test_evaluate import hand_results


def _document():
    results = hand_results()
    b = results[1]  # the wrong answer: give it passages with markup-like text and its evidence quote
    b.retrieved = [
        {"rank": 1, "doc": "d.txt", "chunk_id": "x1", "section": "第一章 <总则>", "text": "前文<script>alert(1)</script>，七项任务完成", "evidence": True},
        {"rank": 2, "doc": "e.txt", "chunk_id": "x2", "section": "", "text": "无关 & 其他", "evidence": False},
    ]
    return results_document(results, {"backend": "extractive", "top_k": 10, "git_commit": "abc123"})


def test_failure_kinds():
    kinds = {i["id"]: failure_kinds(i) for i in _document()["items"]}
    assert kinds == {"a": [], "b": ["wrong answer"], "c": [], "d": ["false refusal", "retrieval miss"], "e": ["missed refusal"]}


def test_highlight_marks_the_quote_even_across_scripts():
    assert highlight("前文七项任务", ["七项"]) == [("前文", False), ("七项", True), ("任务", False)]
    # Traditional chunk, Simplified quote: marked through the normalised text (same length)
    assert highlight("地區生產總值", ["生产"]) == [("地區", False), ("生產", True), ("總值", False)]
    assert highlight("没有", ["别的"]) == [("没有", False)]


def test_report_files_metrics_failures_escaping_and_embedded_charts(tmp_path):
    html_path = write_report(_document(), tmp_path / "rep")
    folder = html_path.parent
    assert {p.name for p in folder.iterdir()} == {"report.html", "report.md", "latency.png", "recall_at_k.png"}
    page = html_path.read_text(encoding="utf-8")
    # metrics table: recall@5 is 2/3
    assert re.search(r"<td>recall@5</td><td>0\.667</td>", page)
    assert "<td>numeric</td><td>2</td><td>0.500</td>" in page
    # the three failed items, with question, expected keys, given answer; not the passing ones
    assert "Failed items (3 of 5)" in page
    for text in ("question b", "question d", "question e", "false refusal", "retrieval miss", "missed refusal", "wrong"):
        assert text in page
    assert "question a" not in page
    # document text is escaped, the evidence quote highlighted, the section shown
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "第一章 &lt;总则&gt;" in page and "无关 &amp; 其他" in page
    assert "<mark>七</mark>" in page
    # charts inside the page as PNG data URIs (self-contained)
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 2 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert (folder / "latency.png").read_bytes().startswith(b"\x89PNG")
    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "| recall@5 | 0.667 |" in md and "question d" in md and "![latency](latency.png)" in md
    assert "**七**" in md and "abc123" in md


def _items(*specs):
    return [
        {"file": "s.jsonl", "id": i, "question": f"q{i}", "category": "numeric" if ans else "unanswerable",
         "answerable": ans, "correct": ok, "refused": refused, "rank": rank}
        for i, ans, ok, refused, rank in specs
    ]


def _diff_inputs(tmp_path):
    # id, answerable, correct, refused, rank
    a = {"metrics": {"recall@5": 0.5, "answer_accuracy": 0.6, "n": 7}, "items": _items(
        ("1", True, False, False, 2),   # wrong -> correct: better
        ("2", True, True, False, 1),    # correct -> false refusal: worse
        ("3", True, True, False, 3),    # rank 3 -> 1, still correct: better
        ("4", True, True, False, 1),    # evidence lost, still correct: worse
        ("5", True, True, False, 1),    # unchanged
        ("6", False, False, False, None),  # unanswerable answered -> refused: better
        ("7", True, True, False, 5),    # correct -> wrong though rank 5 -> 1: mixed
        ("gone", True, True, False, 1),
    )}
    b = {"metrics": {"recall@5": 0.75, "answer_accuracy": 0.5, "n": 7}, "items": _items(
        ("1", True, True, False, 2), ("2", True, False, True, 1), ("3", True, True, False, 1),
        ("4", True, True, False, None), ("5", True, True, False, 1), ("6", False, False, True, None),
        ("7", True, False, False, 1), ("new", True, True, False, 1),
    )}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a), encoding="utf-8")
    pb.write_text(json.dumps(b), encoding="utf-8")
    return a, b, pa, pb


def test_diff_finds_known_changes(tmp_path):
    a, b, _, _ = _diff_inputs(tmp_path)
    d = diff(a, b)
    assert [c["id"] for c in d["better"]] == ["1", "3", "6"]
    assert [c["id"] for c in d["worse"]] == ["2", "4"]
    assert [c["id"] for c in d["mixed"]] == ["7"]
    assert d["unchanged"] == 1 and d["only_a"] == [["s.jsonl", "gone"]] and d["only_b"] == [["s.jsonl", "new"]]
    by_id = {c["id"]: c for c in d["better"] + d["worse"] + d["mixed"]}
    assert by_id["2"]["changes"] == ["correct → refused"]
    assert by_id["4"]["changes"] == ["rank 1 → —"]
    assert by_id["6"]["outcome"] == ["answered", "refused"]
    assert d["metrics"]["recall@5"]["delta"] == 0.25 and d["metrics"]["answer_accuracy"]["delta"] == pytest.approx(-0.1)
    text = format_diff(d)
    assert "| recall@5 | 0.500 | 0.750 | +0.250 |" in text and "worse (2):" in text and "only in A: s.jsonl:gone" in text


def test_eval_diff_command(tmp_path):
    _, _, pa, pb = _diff_inputs(tmp_path)
    out = run(["eval-diff", str(pa), str(pb)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "better (3):" in out.stdout and "rank 3 → 1" in out.stdout
    out = run(["eval-diff", "--json", str(pa), str(pb)], tmp_path)
    assert out.returncode == 0 and len(json.loads(out.stdout)["worse"]) == 2
    out = run(["eval-diff", str(pa), str(tmp_path / "missing.json")], tmp_path)
    assert out.returncode == 1 and "missing.json" in out.stderr


def test_eval_report_command_rebuilds_a_report_from_json(tmp_path):
    results = tmp_path / "r.json"
    results.write_text(json.dumps(_document(), ensure_ascii=False), encoding="utf-8")
    out = run(["eval-report", str(results), str(tmp_path / "rep")], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "question d" in (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")


def test_the_page_marks_the_quote_in_any_script_and_windows_the_passage():
    from qa_app.highlight import highlight_html

    html = highlight_html("前文很长很长的一段话。全区地區生產總值增長6%，后文也很长很长很长。", "地区生产总值增长6%", 5)
    assert html == "…段话。全区<mark>地區生產總值增長6%</mark>，后文也很…"
    assert highlight_html("<b>没有</b>", "别的", 5) == "&lt;b&gt;没有&lt;/b&gt;"
