"""The corpus pack: chosen by a setting, never ingested as documents."""
from qa_app.config import Settings
from qa_app.ingest.pipeline import expand_paths
from qa_app.lexicon import is_pack

from .conftest import SEEDS


def test_an_empty_setting_means_no_pack(monkeypatch):
    monkeypatch.setenv("QA_LEXICON", "")
    assert Settings().lexicon is None
    assert Settings(lexicon="").lexicon is None
    monkeypatch.delenv("QA_LEXICON")
    assert Settings().lexicon == SEEDS / "lexicon"


def test_no_pack_is_read_as_documents_whichever_is_active(tmp_path):
    assert is_pack(SEEDS / "lexicon") and not is_pack(SEEDS)
    files, problems = expand_paths([SEEDS])  # no active pack named: still skipped
    assert not problems
    assert sorted(f.name for f in files) == sorted(f.name for f in SEEDS.glob("*.txt"))
    # A folder called lexicon without word lists is an ordinary folder of documents.
    (tmp_path / "lexicon").mkdir()
    (tmp_path / "lexicon" / "report.txt").write_text("2025年全市新建口袋公园27座。\n", encoding="utf-8")
    assert [f.name for f in expand_paths([tmp_path])[0]] == ["report.txt"]
