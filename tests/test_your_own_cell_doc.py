"""docs/your-own-cell.md: its five commands, parsed out of the page and run as written (only
``--model`` is added, pointing at the quick test model instead of a trained champion)."""
from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path

import pytest

from serving.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "your-own-cell.md"


def doc_commands() -> list[list[str]]:
    """The ``$ fadecast …`` lines of the page's first console block."""
    block = re.search(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    return [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]


def test_the_page_has_five_fadecast_commands():
    cmds = doc_commands()
    assert len(cmds) == 5 and all(c[0] == "fadecast" for c in cmds)


@functools.cache
def cached_model_dir() -> Path:
    """The quick test model, trained once per process for this file and test_own_files."""
    from test_serving_model import quick_model_dir

    return quick_model_dir()


@pytest.fixture(scope="module")
def model_dir():
    return cached_model_dir()


@pytest.mark.slow
def test_the_five_commands_run(capsys, monkeypatch, model_dir):
    monkeypatch.chdir(ROOT)  # the page's paths are relative to the repository root
    outputs = []
    for argv in doc_commands():
        args = argv[1:]
        if args[0] in ("forecast", "advice"):
            args += ["--model", str(model_dir)]
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 0, f"{' '.join(argv)} failed: {err}"
        outputs.append((out, err))
    (_, ingest_err), (show_out, _), (fc_out, fc_err), (adv_out, _), (human, _) = outputs
    assert "warning: test_time_estimated" in ingest_err
    assert "capacity_unit_inferred" not in ingest_err  # the header says mAh
    assert "examples/capacity_table.csv" in show_out and "test_time_estimated" in show_out
    doc = json.loads(fc_out)
    assert doc["test_time_estimated"] is True and len(doc["forecast"]) == 100
    assert doc["forecast"][0]["cycle_index"] == 161
    assert 0.0 <= doc["attribution"]["time_share"]["p50"] <= 1.0
    assert "note: test_time_estimated" in fc_err
    assert json.loads(adv_out)["decision"] in ("stop", "continue")
    assert "time-driven share of the loss so far" in human
