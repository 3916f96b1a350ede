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
    config["training"]["max_steps"] = 6
    config["training"]["eval_frequency"] = 3
    nlp = init_nlp(config)
    (tmp_path / "out").mkdir()
    train(nlp, tmp_path / "out")
    loaded = spacy.load(tmp_path / "out" / "model-best")
    doc = loaded(text)
    assert "binary_ner_scores" in doc.spans
    assert loaded.get_pipe("binary_ner").labels
