"""Every config in configs/ trains in-process on a tiny corpus, as `spacy train` would."""

import json
from pathlib import Path

import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import load_config

from .util import GOLD_RECORDS, TEACH_RECORDS, write_tiny_vectors, zh_records

# Transformer configs need a real checkpoint; tests/test_trf_configs.py trains
# them with a tiny local BERT instead.
CONFIGS = sorted(
    p for p in (Path(__file__).resolve().parent.parent / "configs").glob("*.cfg") if not p.stem.endswith("_trf")
)


def write(path: Path, records) -> str:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf8")
    return str(path)


def train_and_load(config, out: Path):
    """Train 6 steps, evaluating every 3, and load model-best."""
    config["training"]["max_steps"] = 6
    config["training"]["eval_frequency"] = 3
    nlp = init_nlp(config)
    out.mkdir()
    train(nlp, out)
    return spacy.load(out / "model-best")


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_trains_saves_and_loads(config_path, tmp_path):
    config = load_config(config_path)
    if config["nlp"]["lang"] == "zh":
        teach = write(tmp_path / "teach.jsonl", zh_records())
        gold = write(
            tmp_path / "gold.jsonl",
            [
                {"text": r["text"], "tokens": r["tokens"], "spans": r["spans"]}
                for r in zh_records()
                if r["answer"] == "accept"
            ],
        )
        text = "高勇：男，中国国籍。"
    else:
        teach = write(tmp_path / "teach.jsonl", TEACH_RECORDS)
        gold = write(tmp_path / "gold.jsonl", GOLD_RECORDS)
        text = "Anna lives in Paris ."
    config["paths"]["train"] = teach
    config["paths"]["train_complete"] = gold
    config["paths"]["dev"] = gold
    if "include_static_vectors = true" in config_path.read_text():
        words = [w for r in TEACH_RECORDS + GOLD_RECORDS for w in r["text"].split()]
        config["paths"]["vectors"] = str(write_tiny_vectors(tmp_path / "vectors", words))
    loaded = train_and_load(config, tmp_path / "out")
    doc = loaded(text)
    assert "binary_ner_scores" in doc.spans
    assert loaded.get_pipe("binary_ner").labels


TEXTCAT_CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs" / "textcat").glob("*.cfg"))
TEXTCAT_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "textcat"


@pytest.mark.parametrize("config_path", TEXTCAT_CONFIGS, ids=[p.name for p in TEXTCAT_CONFIGS])
def test_textcat_config_trains_saves_and_loads(config_path, tmp_path):
    """The textcat configs train on the sample's answers (paths.train) and
    dev annotations, choose model-best on the dev cats_score, and load."""
    config = load_config(config_path)
    lang = config["nlp"]["lang"]
    config["paths"]["train"] = str(TEXTCAT_ASSETS / f"{lang}_answers.jsonl")
    config["paths"]["dev"] = str(TEXTCAT_ASSETS / f"{lang}_gold_dev.jsonl")
    loaded = train_and_load(config, tmp_path / "out")
    pipe = loaded.get_pipe("binary_textcat")
    assert pipe.exclusive == (lang == "zh")
    assert len(pipe.labels) == 4
    cats = loaded(json.loads((TEXTCAT_ASSETS / f"{lang}_gold_dev.jsonl").open(encoding="utf8").readline())["text"]).cats
    assert set(cats) == set(pipe.labels)
    meta = json.loads((tmp_path / "out" / "model-best" / "meta.json").read_text(encoding="utf8"))
    assert "cats_score" in meta["performance"]
