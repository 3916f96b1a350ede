"""spaCy's own `debug config` and `debug data`, and `spacy train` as a
command, succeed on the textcat configs with the textcat sample."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli._util import app
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_binary_ner.textcat.reader import read_textcat_data

from .util import sample_paths

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs" / "textcat").glob("*.cfg"))
ASSETS = ROOT / "assets" / "textcat"


def paths(config_path: Path) -> list:
    return sample_paths(config_path, ASSETS)


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_spacy_debug_config_and_data(config_path):
    runner = CliRunner()
    result = runner.invoke(app, ["debug", "config", str(config_path)] + paths(config_path))
    assert result.exit_code == 0, result.output[-3000:]
    assert "Config is valid" in result.output
    result = runner.invoke(app, ["debug", "data", str(config_path)] + paths(config_path))
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    assert "Pipeline can be initialized with data" in result.output
    assert "140 training docs" in result.output and "40 evaluation docs" in result.output


def test_spacy_train_evaluate_and_package_commands(tmp_path):
    config_path = ROOT / "configs" / "textcat" / "zh_textcat_cnn.cfg"
    runner = CliRunner()
    out = tmp_path / "training"
    args = ["train", str(config_path), "--output", str(out), "--training.max_steps", "4"] + paths(config_path)
    result = runner.invoke(app, args + ["--training.eval_frequency", "2"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    # spaCy's evaluate reads .spacy files: the dev annotations as the reader makes them.
    nlp = spacy.load(out / "model-best")
    examples, _ = read_textcat_data(nlp, complete_paths=ASSETS / "zh_gold_dev.jsonl")
    DocBin(docs=[eg.reference for eg in examples], store_user_data=True).to_disk(tmp_path / "dev.spacy")
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(
        app, ["evaluate", str(out / "model-best"), str(tmp_path / "dev.spacy"), "--output", str(metrics)]
    )
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    assert 0.0 <= json.loads(metrics.read_text(encoding="utf8"))["cats_score"] <= 1.0
    (tmp_path / "packages").mkdir()
    result = runner.invoke(app, ["package", str(out / "model-best"), str(tmp_path / "packages"), "--name", "textcat"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    assert (tmp_path / "packages" / "zh_textcat-0.0.0" / "setup.py").exists()


def test_sample_is_what_make_sample_writes_and_reads_whole(tmp_path):
    subprocess.run([sys.executable, str(ASSETS / "make_sample.py"), str(tmp_path)], check=True, capture_output=True)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in ASSETS.glob("*.jsonl"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), name
    for lang in ("en", "zh"):
        nlp = spacy.blank(lang)
        _, reader = read_textcat_data(nlp, ASSETS / f"{lang}_answers.jsonl", ASSETS / f"{lang}_gold_dev.jsonl")
        total = reader.total()
        assert total.used == total.records == 180 and not total.skipped
