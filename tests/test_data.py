"""Reading teach answers and complete annotations into examples."""
import gzip
import json

import pytest
import spacy
from spacy.util import registry

from spacy_binary_ner.data import ReadStats, iter_jsonl, records_to_examples

from .util import GOLD_RECORDS, TEACH_RECORDS, zh_records


def rec(text, start, end, label, answer, **extra):
    return {"text": text, "spans": [{"start": start, "end": end, "label": label}], "answer": answer, **extra}


def test_merge_by_sentence():
    nlp = spacy.blank("en")
    stats = ReadStats()
    examples = records_to_examples(nlp, TEACH_RECORDS, stats=stats)
    assert stats.records == len(TEACH_RECORDS)
    assert stats.examples == len(examples) == 5
    assert stats.reasons["skipped: ignore answer"] == 1
    by_text = {eg.reference.text: eg.reference for eg in examples}
    london = by_text["I like London and Berlin ."]
    assert [(e.text, e.label_) for e in london.ents] == [("London", "LOC"), ("Berlin", "LOC")]
    assert [(s.text, s.label_) for s in london.spans["incorrect_spans"]] == [("I", "PERSON")]
    # Binary answers leave every other token unknown.
    assert [t.ent_iob_ for t in london] == ["", "", "B", "", "B", ""]


def test_complete_marks_the_rest_outside():
    nlp = spacy.blank("en")
    examples = records_to_examples(nlp, GOLD_RECORDS, complete=True)
    assert len(examples) == 3
    assert all(t.ent_iob_ in ("B", "I", "O") for eg in examples for t in eg.reference)
    assert not examples[2].reference.ents


def test_conflicting_answers_later_wins_and_is_counted():
    nlp = spacy.blank("en")
    stats = ReadStats()
    records = [rec("Paris is nice", 0, 5, "LOC", "reject"), rec("Paris is nice", 0, 5, "LOC", "accept")]
    (eg,) = records_to_examples(nlp, records, stats=stats)
    assert [e.text for e in eg.reference.ents] == ["Paris"]
    assert "incorrect_spans" not in eg.reference.spans
    assert stats.reasons["conflicting answers: later answer kept"] == 1
    (eg,) = records_to_examples(nlp, records[::-1])
    assert not eg.reference.ents and len(eg.reference.spans["incorrect_spans"]) == 1


def test_duplicate_answers_merge():
    nlp = spacy.blank("en")
    stats = ReadStats()
    records = [rec("Paris is nice", 0, 5, "LOC", "accept", _input_hash=1)] * 2
    (eg,) = records_to_examples(nlp, records, stats=stats)
    assert len(eg.reference.ents) == 1
    assert stats.reasons["duplicate answer merged"] == 1
    assert stats.reasons["merged into an earlier record"] == 1


def test_skips_are_counted():
    nlp = spacy.blank("en")
    stats = ReadStats()
    records = [
        rec("Paris is nice", 0, 3, "LOC", "accept"),  # not on token boundaries
        rec("", 0, 0, "LOC", "accept"),
        {"text": "No answer", "spans": []},
        rec("Big Paris", 0, 9, "LOC", "accept"),
        rec("Big Paris", 4, 9, "LOC", "accept"),  # overlaps the accept before it
    ]
    examples = records_to_examples(nlp, records, stats=stats)
    assert stats.reasons["span skipped: offsets not on token boundaries"] == 1
    assert stats.reasons["skipped: empty text"] == 1
    assert stats.reasons["skipped: missing or unknown answer"] == 1
    assert stats.reasons["span skipped: accept overlaps an earlier accept"] == 1
    assert stats.reasons["skipped: no usable span"] == 1
    assert [e.text for eg in examples for e in eg.reference.ents] == ["Big Paris"]


def test_given_tokens_are_used_chinese():
    nlp = spacy.blank("zh")
    examples = records_to_examples(nlp, zh_records())
    assert [len(eg.predicted) for eg in examples] == [10, 15, 10]
    assert [(e.text, e.label_) for e in examples[0].reference.ents] == [("高勇", "NAME"), ("中国", "CONT")]
    assert [(s.text, s.label_) for s in examples[1].reference.spans["incorrect_spans"]] == [("中国", "NAME")]


def test_jsonl_plain_gz_and_directory(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in TEACH_RECORDS[:3]) + "\n\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf8") as f:
        f.write(json.dumps(TEACH_RECORDS[3]) + "\n")
    assert len(list(iter_jsonl(tmp_path))) == 4
    assert len(list(iter_jsonl(tmp_path / "b.jsonl.gz"))) == 1
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n{broken\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: not valid JSON"):
        list(iter_jsonl(tmp_path / "c.jsonl"))
    with pytest.raises(FileNotFoundError):
        list(iter_jsonl(tmp_path / "missing.jsonl"))


def test_registered_reader(tmp_path):
    teach, gold = tmp_path / "teach.jsonl", tmp_path / "gold.jsonl"
    teach.write_text("\n".join(json.dumps(r) for r in TEACH_RECORDS))
    gold.write_text("\n".join(json.dumps(r) for r in GOLD_RECORDS))
    nlp = spacy.blank("en")
    reader = registry.readers.get("spacy-binary-ner.TeachCorpus.v1")
    both = list(reader(path=str(teach), complete_path=str(gold))(nlp))
    assert len(both) == 5 + 3
    assert len(list(reader(path=str(teach), limit=2)(nlp))) == 2
    with pytest.raises(ValueError, match="needs a `path`"):
        list(reader()(nlp))
