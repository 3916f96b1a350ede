"""configs/en_trf.cfg and configs/zh_trf.cfg train in-process, as `spacy train`
would, with a tiny randomly initialised BERT saved to a temporary folder in place
of the configs' checkpoint (no download), then save, reload and predict the same."""

import json
from pathlib import Path
from typing import Dict, List

import numpy
import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import load_config, registry

from .util import GOLD_RECORDS, TEACH_RECORDS, zh_records

pytest.importorskip("spacy_transformers")
transformers = pytest.importorskip("transformers")

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
LOSSES: List[float] = []


@registry.loggers("test_trf_configs.LossLogger.v1")
def loss_logger():
    def setup(nlp, stdout=None, stderr=None):
        LOSSES.clear()

        def log_step(info: Dict) -> None:
            if info is not None:
                LOSSES.append(info["losses"]["binary_ner"])

        return log_step, lambda: None

    return setup


def write(path: Path, records) -> str:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf8")
    return str(path)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny_bert")
    texts = [r["text"] for r in TEACH_RECORDS + GOLD_RECORDS + zh_records()]
    # BertTokenizer lower-cases and splits CJK text into characters.
    words = sorted({w for t in texts for w in t.lower().split()} | {c for t in texts for c in t if c.strip()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    (path / "vocab.txt").write_text("\n".join(vocab), encoding="utf8")
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=160,
    )
    transformers.BertModel(config).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("name", ["en_trf.cfg", "zh_trf.cfg"])
def test_trf_config_trains_saves_and_loads(name, tiny_bert, tmp_path):
    config = load_config(CONFIGS / name)
    # The checkpoint and its width are variables: the overrides below reach both places.
    assert config["components"]["transformer"]["model"]["name"] == "${vars.transformer_name}"
    assert config["components"]["binary_ner"]["model"]["tok2vec_width"] == "${vars.transformer_width}"
    if config["nlp"]["lang"] == "zh":
        teach = [r for r in zh_records()]
        gold = [
            {"text": r["text"], "tokens": r["tokens"], "spans": r["spans"]} for r in teach if r["answer"] == "accept"
        ]
        text = "高勇：男，中国国籍。"
    else:
        teach, gold, text = TEACH_RECORDS, GOLD_RECORDS, "Anna lives in Paris ."
    config["vars"]["transformer_name"] = tiny_bert
    config["vars"]["transformer_width"] = 16
    config["paths"]["train"] = write(tmp_path / "teach.jsonl", teach)
    config["paths"]["train_complete"] = write(tmp_path / "gold.jsonl", gold)
    config["paths"]["dev"] = config["paths"]["train_complete"]
    config["training"]["max_steps"] = 12
    config["training"]["eval_frequency"] = 1  # the logger sees every step's loss
    config["training"]["accumulate_gradient"] = 1
    config["training"]["optimizer"]["learn_rate"] = 0.001  # the real schedule warms up over 250 steps
    config["training"]["logger"] = {"@loggers": "test_trf_configs.LossLogger.v1"}
    # Every scored span is kept, so reload is compared on all of them.
    config["components"]["binary_ner"]["candidates_threshold"] = 0.0
    nlp = init_nlp(config)
    embeddings = nlp.get_pipe("transformer").model.transformer.embeddings.word_embeddings.weight
    before = embeddings.detach().clone().numpy()
    (tmp_path / "out").mkdir()
    train(nlp, tmp_path / "out")
    assert LOSSES[-1] < LOSSES[1]  # LOSSES[0] is logged before any update
    # grad_factor 1.0: binary_ner's loss fine-tunes the transformer.
    assert not numpy.allclose(before, embeddings.detach().numpy())
    doc = nlp(text)
    doc2 = spacy.load(tmp_path / "out" / "model-last")(text)
    scores = doc.spans["binary_ner_scores"].attrs["scores"]
    ner = nlp.get_pipe("binary_ner")
    n = len(doc)
    L = ner.max_span_length
    assert len(scores) == (min(n, L) * n - min(n, L) * (min(n, L) - 1) // 2) * len(ner.labels)
    assert [(s.start, s.end, s.label_) for s in doc.spans["binary_ner_scores"]] == [
        (s.start, s.end, s.label_) for s in doc2.spans["binary_ner_scores"]
    ]
    assert list(scores) == pytest.approx(list(doc2.spans["binary_ner_scores"].attrs["scores"]), rel=1e-4)
