"""Chinese: the same records trained through given tokens, spaCy's character
segmenter and jieba (an optional extra)."""

import importlib.util

import pytest
import spacy

from spacy_binary_ner.data import ReadStats, records_to_examples

from .util import zh_records

HAS_JIEBA = importlib.util.find_spec("jieba") is not None


def records(with_tokens: bool):
    out = []
    for r in zh_records():
        r = dict(r)
        if not with_tokens:
            del r["tokens"]
        out.append(r)
    return out


def make_nlp(segmenter):
    if segmenter is None:
        return spacy.blank("zh")
    return spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": segmenter}}})


@pytest.mark.parametrize(
    "segmenter,with_tokens,first_tokens",
    [
        ("char", True, ["高", "勇", "：", "男", "，", "中", "国", "国", "籍", "。"]),
        ("char", False, ["高", "勇", "：", "男", "，", "中", "国", "国", "籍", "。"]),
        pytest.param(
            "jieba",
            False,
            ["高勇", "：", "男", "，", "中国", "国籍", "。"],
            marks=pytest.mark.skipif(not HAS_JIEBA, reason="jieba not installed (pip install '.[jieba]')"),
        ),
        # Given tokens win over the pipeline's segmenter, so every system sees the same tokens.
        pytest.param(
            "jieba",
            True,
            ["高", "勇", "：", "男", "，", "中", "国", "国", "籍", "。"],
            marks=pytest.mark.skipif(not HAS_JIEBA, reason="jieba not installed (pip install '.[jieba]')"),
        ),
    ],
)
def test_same_records_train_through_each_tokenization(segmenter, with_tokens, first_tokens):
    nlp = make_nlp(segmenter)
    stats = ReadStats()
    examples = records_to_examples(nlp, records(with_tokens), stats=stats)
    assert stats.used == stats.records == 6 and not stats.skipped
    assert [t.text for t in examples[0].predicted] == first_tokens
    assert [(e.text, e.label_) for e in examples[0].reference.ents] == [("高勇", "NAME"), ("中国", "CONT")]
    assert [(s.text, s.label_) for s in examples[1].reference.spans["incorrect_spans"]] == [("中国", "NAME")]
    nlp.add_pipe("binary_ner", config={"model": {"hidden_width": 16, "lstm_depth": 0}})
    optimizer = nlp.initialize(lambda: examples)
    losses = [nlp.update(examples, sgd=optimizer, losses={})["binary_ner"] for _ in range(15)]
    assert losses[-1] < losses[0] / 2
