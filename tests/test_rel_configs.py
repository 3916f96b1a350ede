"""spaCy's own `debug config` and `debug data` succeed on the relation
configs with the relation sample, `spacy train` trains binary_ner and
binary_rel together on it, and the sample is what its script writes."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli._util import app
from typer.testing import CliRunner

from spacy_binary_ner.rel.reader import read_rel_data

from .util import sample_paths

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs" / "rel").glob("*.cfg"))
ASSETS = ROOT / "assets" / "rel"


def paths(config_path: Path) -> list:
    return sample_paths(config_path, ASSETS)


def test_both_languages_have_a_config():
    assert [p.name for p in CONFIGS] == ["en_rel_cnn.cfg", "zh_rel_cnn.cfg"]


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_spacy_debug_config_and_data(config_path):
    runner = CliRunner()
    for command, says in (("config", "Config is valid"), ("data", "Pipeline can be initialized with data")):
        result = runner.invoke(app, ["debug", command, str(config_path)] + paths(config_path))
        assert result.exit_code == 0, (command, result.output[-3000:], result.exception)
        assert says in result.output
    assert "120 training docs" in result.output and "40 evaluation docs" in result.output


def test_spacy_train_trains_ner_and_relations_together(tmp_path):
    config_path = ROOT / "configs" / "rel" / "en_rel_cnn.cfg"
    out = tmp_path / "training"
    args = ["train", str(config_path), "--output", str(out), "--training.max_steps", "6"] + paths(config_path)
    result = CliRunner().invoke(app, args + ["--training.eval_frequency", "3"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    assert "REL_MICRO_F" in result.output and "ENTS_F" in result.output
    nlp = spacy.load(out / "model-last")
    assert nlp.pipe_names == ["binary_ner", "binary_rel"]
    rel = nlp.get_pipe("binary_rel")
    assert rel.labels == ("Based_In", "Live_In", "Work_For")
    assert rel.cfg["label_pairs"]["Work_For"] == [["PER", "ORG"]]
    doc = nlp("Anna Berg works for Acme Corp .")
    assert isinstance(doc._.rel, dict)


def test_sample_is_what_make_sample_writes_and_reads_whole(tmp_path):
    subprocess.run([sys.executable, str(ASSETS / "make_sample.py"), str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in ASSETS.glob("*.jsonl"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), name
    for lang in ("en", "zh"):
        nlp = spacy.blank(lang)
        _, reader = read_rel_data(nlp, ASSETS / f"{lang}_answers.jsonl", ASSETS / f"{lang}_gold_dev.jsonl")
        total = reader.total()
        assert total.used == total.records == 160 and not total.skipped
