"""A built wheel, installed away from the checkout, answers and refuses: the prompts, word lists and
fitted models it needs are package data, not files that only a checkout has."""
import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT

SCRIPT = """
import sys
import qa_app
assert qa_app.__file__.startswith(sys.argv[1]), "imported from " + qa_app.__file__
from qa_app.answer import Assistant
from qa_app.config import settings_with
from qa_app.index.store import Index
from qa_app.ingest.pipeline import ingest
settings = settings_with(data_dir=sys.argv[2])
index = Index(settings)
assert not ingest([sys.argv[3]], index, progress=False).failed
assistant = Assistant(settings, index=index)
for question in sys.argv[4:]:
    answer = assistant.ask(question)
    print(answer.refused, answer.text.replace(chr(10), " "))
"""


@pytest.mark.slow
def test_an_installed_wheel_answers_and_refuses(tmp_path):
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(wheels)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("qa_app-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("refuse.txt", "refuse_en.txt", "system.md", "answer.md", "condense.md", "missing_figure.txt"):
        assert f"qa_app/resources/prompts/{needed}" in names, needed
    for needed in ("sentence_model.json", "retrieval_model.json", "synonyms.txt", "glossary_en_zh.tsv", "userdict.txt"):
        assert f"qa_app/resources/{needed}" in names, needed
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                                "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]

    # Run from an empty folder with the wheel first on the path and no QA_* settings of the test run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env["PYTHONPATH"] = str(site)
    ran = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(site), str(tmp_path / "data"), str(ROOT / "seeds" / "000_272af4a6a23bb567.txt"),
         "2023年海淀区地区生产总值增长了多少？", "海淀区有多少家三甲医院？"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    answered, refused = ran.stdout.strip().splitlines()[-2:]
    assert answered.startswith("False") and "6%" in answered, answered
    # The refusal's wording comes from the packaged prompt (refuse.txt).
    wording = (ROOT / "qa_app" / "resources" / "prompts" / "refuse.txt").read_text(encoding="utf-8").strip()
    assert refused.startswith("True") and wording in refused, refused
