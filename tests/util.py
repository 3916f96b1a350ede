"""Helpers shared by the tests: tiny hand-made corpora."""

from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.vectors import Vectors

SpanSpec = Tuple[int, int, str]


def make_example(
    nlp: Language,
    words: Sequence[str],
    ents: Sequence[SpanSpec] = (),
    rejects: Sequence[SpanSpec] = (),
    default: str = "missing",
    key: str = "incorrect_spans",
) -> Example:
    """An example whose reference has `ents` (token offsets, end exclusive),
    every other token `default` ("missing" or "outside"), and `rejects` in
    `reference.spans[key]`."""
    doc = Doc(nlp.vocab, words=list(words))
    ref = doc.copy()
    ref.set_ents([Span(ref, s, e, label=lab) for s, e, lab in ents], default=default)
    if rejects:
        ref.spans[key] = [Span(ref, s, e, label=lab) for s, e, lab in rejects]
    return Example(doc, ref)


# Teach-style records: one proposed span each, answered by a person.
TEACH_RECORDS: List[dict] = [
    {"text": "Who is Shaka Khan ?", "spans": [{"start": 7, "end": 17, "label": "PERSON"}], "answer": "accept"},
    {"text": "I like London and Berlin .", "spans": [{"start": 7, "end": 13, "label": "LOC"}], "answer": "accept"},
    {"text": "I like London and Berlin .", "spans": [{"start": 18, "end": 24, "label": "LOC"}], "answer": "accept"},
    {"text": "I like London and Berlin .", "spans": [{"start": 0, "end": 1, "label": "PERSON"}], "answer": "reject"},
    {"text": "Anna lives in Paris .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}], "answer": "accept"},
    {"text": "Anna lives in Paris .", "spans": [{"start": 14, "end": 19, "label": "LOC"}], "answer": "accept"},
    {"text": "Anna lives in Paris .", "spans": [{"start": 5, "end": 10, "label": "LOC"}], "answer": "reject"},
    {"text": "Berlin is big .", "spans": [{"start": 0, "end": 6, "label": "PERSON"}], "answer": "reject"},
    {"text": "Berlin is big .", "spans": [{"start": 0, "end": 6, "label": "LOC"}], "answer": "accept"},
    {"text": "Shaka Khan met Anna .", "spans": [{"start": 0, "end": 10, "label": "PERSON"}], "answer": "accept"},
    {"text": "Shaka Khan met Anna .", "spans": [{"start": 15, "end": 19, "label": "PERSON"}], "answer": "accept"},
    {"text": "Shaka Khan met Anna .", "spans": [{"start": 11, "end": 14, "label": "LOC"}], "answer": "ignore"},
]

# Complete annotations: every entity marked, the rest is not an entity.
GOLD_RECORDS: List[dict] = [
    {
        "text": "Anna met Shaka Khan in London .",
        "spans": [
            {"start": 0, "end": 4, "label": "PERSON"},
            {"start": 9, "end": 19, "label": "PERSON"},
            {"start": 23, "end": 29, "label": "LOC"},
        ],
    },
    {"text": "It rains in Berlin .", "spans": [{"start": 12, "end": 18, "label": "LOC"}]},
    {"text": "Nothing to see here .", "spans": []},
]


def zh_records() -> List[dict]:
    """Chinese teach answers with character tokens, as in the benchmark data."""
    texts = [
        ("高勇：男，中国国籍。", [(0, 2, "NAME", "accept"), (5, 7, "CONT", "accept")]),
        ("李明，中国国籍，无境外居留权。", [(0, 2, "NAME", "accept"), (3, 5, "NAME", "reject")]),
        ("王芳：女，中国国籍。", [(0, 2, "NAME", "accept"), (5, 7, "CONT", "accept")]),
    ]
    records = []
    for text, spans in texts:
        tokens = [{"text": c, "start": i, "end": i + 1, "id": i} for i, c in enumerate(text)]
        for start, end, label, answer in spans:
            records.append(
                {
                    "text": text,
                    "tokens": tokens,
                    "answer": answer,
                    "spans": [{"start": start, "end": end, "token_start": start, "token_end": end - 1, "label": label}],
                }
            )
    return records


# A small, fast SpanScorer for tests.
SMALL_MODEL = {
    "@architectures": "spacy-binary-ner.SpanScorer.v1",
    "hidden_width": 32,
    "max_span_length": 4,
    "lstm_width": 32,
    "lstm_depth": 1,
    "dropout": 0.0,
    "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": 32,
            "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
            "rows": [500, 100, 250, 250],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": 32,
            "depth": 1,
            "window_size": 1,
            "maxout_pieces": 2,
        },
    },
}


def write_tiny_vectors(path: Path, words: Iterable[str], width: int = 8, seed: int = 0) -> Path:
    """A vectors-only spaCy pipeline folder (what `[initialize] vectors` reads):
    one random row per distinct word, as `spacy init vectors` would make."""
    nlp = spacy.blank("en")
    keys = sorted(set(words))
    data = numpy.random.default_rng(seed).normal(size=(len(keys), width)).astype("float32")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=keys, name="tiny_test_vectors")
    nlp.to_disk(path)
    return path


def sample_paths(config_path: Path, assets: Path) -> List[str]:
    """`spacy train` overrides reading a sample's answers and dev annotations:
    `assets/<kind>/<lang>_answers.jsonl` and `<lang>_gold_dev.jsonl`, the
    language from the config's name (`zh_textcat_cnn.cfg`)."""
    lang = config_path.stem.split("_")[0]
    return [
        "--paths.train",
        str(assets / f"{lang}_answers.jsonl"),
        "--paths.dev",
        str(assets / f"{lang}_gold_dev.jsonl"),
    ]
