"""Every command of the package that reads or writes files (convert,
annotate, select, teach, evaluate, simulate, db-out, db-stats, db-drop and the
dispatcher) with each kind of wrong argument: one line on stderr naming the
argument, exit status 2, and nothing written."""

import json
import os
from pathlib import Path

import pytest

from spacy_binary_ner.__main__ import main as cli_main

RECORD = {"text": "Paris is nice", "spans": [{"start": 0, "end": 5, "label": "LOC"}], "answer": "accept"}


@pytest.fixture
def tree(tmp_path):
    """A good input, a fake pipeline folder (argument checks never load it),
    a plain file where a folder is needed, and a folder with no .jsonl."""
    (tmp_path / "in.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf8")
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "config.cfg").write_text("[nlp]\n", encoding="utf8")
    (tmp_path / "file").write_text("a file\n", encoding="utf8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "dir.spacy").mkdir()
    (tmp_path / "array.json").write_text(json.dumps([RECORD]), encoding="utf8")
    return tmp_path


def snapshot(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def teach(*extra: str, pipeline: str = "blank:en", source: str = "{t}/in.jsonl"):
    """A teach command line; a flag in `extra` given twice overrides (argparse keeps the last)."""
    return ["teach", "ds", pipeline, source, "--label", "LOC", "--output", "{t}/out", *extra]


def simulate(*extra: str, pool: str = "{t}/in.jsonl"):
    """A simulate command line; a flag in `extra` given twice overrides."""
    return ["simulate", "--pool", pool, "--test", "{t}/in.jsonl", "--lang", "en", "--output", "{t}/out", *extra]


# (command, the argument the message must name); "{t}" is the tree's folder.
CASES = {
    "convert: unknown language": (["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--lang", "qq"], "--lang"),
    "convert: missing input": (["convert", "{t}/missing.jsonl", "{t}/out/o.spacy"], "paths"),
    "convert: missing complete input": (["convert", "--complete", "{t}/no.jsonl", "{t}/out/o.spacy"], "--complete"),
    "convert: folder with no jsonl": (["convert", "{t}/empty", "{t}/out/o.spacy"], "paths"),
    "convert: a JSON array file": (["convert", "{t}/array.json", "{t}/out/o.spacy"], "paths"),
    "convert: output under a file": (["convert", "{t}/in.jsonl", "{t}/file/o.spacy"], "paths (the output)"),
    "convert: output is a folder": (["convert", "{t}/in.jsonl", "{t}/dir.spacy"], "paths (the output)"),
    "convert: report under a file": (
        ["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--report", "{t}/file/r.json"],
        "--report",
    ),
    "convert: padded label": (["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--labels", " LOC"], "--labels"),
    "convert: bad setting": (["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--max-length", "-1"], "--max-length"),
    "convert: segmenter for en": (
        ["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--segmenter", "jieba"],
        "--segmenter",
    ),
    "convert: unknown choice": (["convert", "{t}/in.jsonl", "{t}/out/o.spacy", "--alignment", "snap"], "--alignment"),
    "annotate: missing input": (["annotate", "{t}/pipe", "{t}/missing.jsonl", "{t}/out"], "input"),
    "annotate: missing pipeline": (["annotate", "{t}/nope", "{t}/in.jsonl", "{t}/out"], "pipeline"),
    "annotate: pipeline is a file": (["annotate", "{t}/file", "{t}/in.jsonl", "{t}/out"], "pipeline"),
    "annotate: pipeline without config": (["annotate", "{t}/empty", "{t}/in.jsonl", "{t}/out"], "pipeline"),
    "annotate: output folder is a file": (["annotate", "{t}/pipe", "{t}/in.jsonl", "{t}/file"], "output"),
    "annotate: output under a file": (["annotate", "{t}/pipe", "{t}/in.jsonl", "{t}/file/out"], "output"),
    "annotate: missing code": (["annotate", "{t}/pipe", "{t}/in.jsonl", "{t}/out", "--code", "{t}/no.py"], "--code"),
    "annotate: pipeline that does not load": (["annotate", "{t}/pipe", "{t}/in.jsonl", "{t}/out"], "pipeline"),
    "select: pipeline that does not load": (
        ["select", "{t}/pipe", "{t}/in.jsonl", "{t}/t.jsonl", "--n", "3"],
        "pipeline",
    ),
    "annotate: no workers": (["annotate", "{t}/pipe", "{t}/in.jsonl", "{t}/out", "--workers", "0"], "--workers"),
    "select: missing input": (["select", "{t}/pipe", "{t}/missing.jsonl", "{t}/t.jsonl", "--n", "3"], "input"),
    "select: missing pipeline": (["select", "{t}/nope", "{t}/in.jsonl", "{t}/t.jsonl", "--n", "3"], "pipeline"),
    "select: output is a folder": (["select", "{t}/pipe", "{t}/in.jsonl", "{t}/empty", "--n", "3"], "output"),
    "select: output under a file": (["select", "{t}/pipe", "{t}/in.jsonl", "{t}/file/t.jsonl", "--n", "3"], "output"),
    "select: bad n": (["select", "{t}/pipe", "{t}/in.jsonl", "{t}/t.jsonl", "--n", "0"], "--n"),
    "select: missing required": (["select", "{t}/pipe", "{t}/in.jsonl", "{t}/t.jsonl"], "--n"),
    "teach: missing source": (teach(source="{t}/missing.jsonl"), "source"),
    "teach: labels differing in case": (teach("--label", "LOC,loc"), "--label"),
    "teach: output is a file": (teach("--output", "{t}/file"), "--output"),
    "teach: missing eval": (teach("--eval", "{t}/no.jsonl"), "--eval"),
    "teach: unknown language": (teach(pipeline="blank:qq"), "pipeline"),
    "teach: missing pipeline": (teach(pipeline="{t}/nope"), "pipeline"),
    "teach: missing config": (teach(pipeline="{t}/no.cfg"), "pipeline"),
    "evaluate: missing model": (["evaluate", "{t}/nope", "--gold", "{t}/in.jsonl"], "model"),
    "evaluate: model without config": (["evaluate", "{t}/empty", "--gold", "{t}/in.jsonl"], "model"),
    "evaluate: missing gold": (["evaluate", "{t}/pipe", "--gold", "{t}/no.jsonl"], "--gold"),
    "evaluate: missing answers": (["evaluate", "{t}/pipe", "--answers", "{t}/no.jsonl"], "--answers"),
    "evaluate: output is a file": (
        ["evaluate", "{t}/pipe", "--gold", "{t}/in.jsonl", "--output", "{t}/file"],
        "--output",
    ),
    "evaluate: displacy under a file": (
        ["evaluate", "{t}/pipe", "--gold", "{t}/in.jsonl", "--displacy-path", "{t}/file/d"],
        "--displacy-path",
    ),
    "simulate: missing pool": (simulate(pool="{t}/no.jsonl"), "--pool"),
    "simulate: missing dev": (simulate("--dev", "{t}/no.jsonl"), "--dev"),
    "simulate: unknown language": (simulate("--lang", "qq"), "--lang"),
    "simulate: output is a file": (simulate("--output", "{t}/file"), "--output"),
    "simulate: unknown strategy": (simulate("--strategy", "greedy"), "--strategy"),
    "simulate: no chunk": (simulate("--chunk-size", "0"), "--chunk-size"),
    "simulate: pattern ratio": (simulate("--pattern-ratio", "2"), "--pattern-ratio"),
    "simulate: threshold": (simulate("--threshold", "1"), "--threshold"),
    "db-out: output under a file": (["db-out", "ds", "{t}/file/o.jsonl", "--db", "{t}/db.sqlite3"], "output"),
    "db-out: missing database": (["db-out", "ds", "{t}/out/o.jsonl", "--db", "{t}/no.sqlite3"], "--db"),
    "db-stats: missing database": (["db-stats", "--db", "{t}/no.sqlite3"], "--db"),
    "db-drop: missing database": (["db-drop", "ds", "--db", "{t}/no.sqlite3"], "--db"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_wrong_argument_is_one_line_exit_2_and_nothing_written(tree, capsys, case):
    argv, argument = CASES[case]
    argv = [a.replace("{t}", str(tree)) for a in argv]
    before = snapshot(tree)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.out == "", captured.err
    assert f"argument {argument}" in lines[0] or (argument == "--n" and "--n" in lines[0])
    assert snapshot(tree) == before


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert cli_main(["convrt"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert "unknown command 'convrt': use one of annotate, convert," in line and captured.out == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_output_folder_that_is_not_writable(tree, capsys):
    locked = tree / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["convert", str(tree / "in.jsonl"), str(locked / "sub" / "o.spacy")])
        assert exit_info.value.code == 2 and "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_strict_stop_is_one_line_exit_1_and_nothing_written(tree, capsys):
    bad = tree / "bad.jsonl"
    bad.write_text(json.dumps({**RECORD, "spans": [{"start": 0, "end": 3, "label": "LOC"}]}) + "\n", encoding="utf8")
    before = snapshot(tree)
    assert (
        cli_main(["convert", str(bad), str(tree / "out" / "o.spacy"), "--strict", "--report", str(tree / "r.json")])
        == 1
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "bad.jsonl:1: misaligned span" in lines[0]
    assert snapshot(tree) == before
