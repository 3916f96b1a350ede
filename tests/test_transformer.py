"""binary_ner behind spacy-transformers' TransformerListener, with a tiny
randomly initialised BERT saved to a temporary folder (no download)."""

import pytest
import spacy
from spacy.util import fix_random_seed

from spacy_binary_ner.data import records_to_examples

from .util import TEACH_RECORDS

pytest.importorskip("spacy_transformers")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "anna", "paris", "lives", "in", "."]
    words += sorted({c for r in TEACH_RECORDS for c in r["text"].lower() if c.strip()})
    (path / "vocab.txt").write_text("\n".join(words), encoding="utf8")
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(path)
    return str(path)


def test_transformer_listener_trains_saves_and_loads(tiny_bert, tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": tiny_bert,
                "tokenizer_config": {"use_fast": True},
                "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 32, "stride": 24},
            }
        },
    )
    # candidates_threshold 0: every scored span is kept, so reload is compared on all of them.
    nlp.add_pipe(
        "binary_ner",
        config={
            "candidates_threshold": 0.0,
            "model": {
                "@architectures": "spacy-binary-ner.SpanScorer.v1",
                "max_span_length": 3,
                "hidden_width": 16,
                "lstm_width": 16,
                "tok2vec_width": 16,  # the transformer's hidden size
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                },
            },
        },
    )
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    losses = [nlp.update(examples, sgd=optimizer)["binary_ner"] for _ in range(15)]
    assert losses[-1] < losses[0]
    text = "Anna lives in Paris ."
    doc = nlp(text)
    nlp.to_disk(tmp_path / "pipeline")
    doc2 = spacy.load(tmp_path / "pipeline")(text)
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in doc2.ents]
    scores = doc.spans["binary_ner_scores"].attrs["scores"]
    assert len(scores) == 12 * 2  # 5 tokens, spans up to 3 long, 2 labels
    assert list(scores) == pytest.approx(list(doc2.spans["binary_ner_scores"].attrs["scores"]), rel=1e-4)
