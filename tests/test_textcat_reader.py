"""The text-category reader: both answer shapes, complete cats, answers of one
text merged, bad records skipped with their reason, and the registered corpus."""

import gzip
import json

import pytest
import spacy
from spacy.util import registry

from spacy_binary_ner.readstats import TeachDataError
from spacy_binary_ner.textcat.reader import (
    READER_NAME,
    TEXTCAT_REASONS,
    TextcatReader,
    parse_textcat_record,
    read_textcat_data,
    textcat_records_to_examples,
)
from spacy_binary_ner.textcat.targets import IGNORED_CATS_KEY

OPTIONS = [{"id": "SPORT", "text": "Sport"}, {"id": "NEWS", "text": "News"}, {"id": 7, "text": "TECH"}]


@pytest.fixture
def nlp():
    return spacy.blank("en")


def read(nlp, records, **kwargs):
    reader = TextcatReader(nlp, **kwargs)
    reader.read_records(records)
    examples = reader.examples()
    return {eg.reference.text: (eg.reference.cats, eg.reference.user_data.get(IGNORED_CATS_KEY)) for eg in examples}, (
        reader.total()
    )


SHAPES = [
    ("label accept", {"label": "SPORT", "answer": "accept"}, {"SPORT": 1.0}),
    ("label reject", {"label": "SPORT", "answer": "reject"}, {"SPORT": 0.0}),
    # Accept: chosen options accepted, the others seen and rejected; an int id takes its text as the label.
    ("choice accept", {"options": OPTIONS, "accept": [7], "answer": "accept"}, {"SPORT": 0, "NEWS": 0, "TECH": 1}),
    ("choice accept none", {"options": OPTIONS, "accept": [], "answer": "accept"}, {"SPORT": 0, "NEWS": 0, "TECH": 0}),
    ("choice 2", {"options": OPTIONS, "accept": ["SPORT", 7], "answer": "accept"}, {"SPORT": 1, "NEWS": 0, "TECH": 1}),
    # Reject: the chosen ones are wrong; nothing said about the others.
    ("choice reject", {"options": OPTIONS, "accept": ["NEWS"], "answer": "reject"}, {"NEWS": 0.0}),
    ("complete cats", {"cats": {"SPORT": 1, "NEWS": 0.0}}, {"SPORT": 1.0, "NEWS": 0.0}),
]  # fmt: skip


@pytest.mark.parametrize("name,fields,cats", SHAPES, ids=[s[0] for s in SHAPES])
def test_answer_shapes(nlp, name, fields, cats):
    got, stats = read(nlp, [{"text": "A text .", **fields}])
    assert got == {"A text .": (cats, None)}
    assert (stats.records, stats.used, stats.examples, sum(stats.skipped.values())) == (1, 1, 1, 0)


def test_answers_of_one_text_merge_and_the_later_wins(nlp):
    records = [
        {"text": "one", "label": "A", "answer": "accept"},
        {"text": "two", "label": "A", "answer": "reject"},
        {"text": "one", "label": "B", "answer": "reject"},
        {"text": "one", "label": "A", "answer": "accept"},  # duplicate: counted once
        {"text": "two", "label": "A", "answer": "accept"},  # conflict: the later wins
        {"text": "two", "label": "C", "answer": "ignore"},
        {"text": "three", "label": "A", "answer": "ignore"},  # an ignore alone says nothing
    ]
    got, stats = read(nlp, records)
    assert got == {"one": ({"A": 1.0, "B": 0.0}, None), "two": ({"A": 1.0}, ["C"])}
    assert stats.records == 7
    assert stats.used == 4 and stats.merged == 2 and stats.examples == 2
    assert stats.skipped == {"duplicate answer": 1, "conflicting answers": 1, "ignore answer": 1}
    assert stats.where["conflicting answers"] == ["record 2"]
    assert stats.used + sum(stats.skipped.values()) == stats.records
    assert stats.spans["read"] == 7 and stats.spans["used"] == 4


BAD = [
    ("not JSON object", [1, 2], "not an object"),
    ("no text", {"label": "A", "answer": "accept"}, "missing key"),
    ("text not a string", {"text": 3, "label": "A", "answer": "accept"}, "bad field"),
    ("empty text", {"text": "  ", "label": "A", "answer": "accept"}, "empty text"),
    ("no answer", {"text": "t", "label": "A"}, "missing key"),
    ("unknown answer", {"text": "t", "label": "A", "answer": "maybe"}, "unknown answer"),
    ("no label or options", {"text": "t", "answer": "accept"}, "missing key"),
    ("label not a string", {"text": "t", "label": ["A"], "answer": "accept"}, "bad field"),
    ("blank label", {"text": "t", "label": " ", "answer": "accept"}, "bad field"),
    ("options not a list", {"text": "t", "options": "A", "accept": [], "answer": "accept"}, "bad field"),
    ("accept names no option", {"text": "t", "options": OPTIONS, "accept": ["X"], "answer": "accept"}, "bad field"),
    ("option without a label", {"text": "t", "options": [{"id": 1}], "accept": [1], "answer": "accept"}, "bad field"),
    ("cats not numbers", {"text": "t", "cats": {"A": "yes"}}, "bad field"),
    ("cats out of range", {"text": "t", "cats": {"A": 2}}, "bad field"),
    ("empty cats", {"text": "t", "cats": {}}, "bad field"),
    ("rejected complete", {"text": "t", "cats": {"A": 1.0}, "answer": "reject"}, "rejected complete annotation"),
    ("NaN", {"text": "t", "cats": {"A": float("nan")}}, "non-finite number"),
]


@pytest.mark.parametrize("name,record,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_records_are_skipped_with_their_reason(nlp, name, record, reason):
    good = {"text": "good", "label": "A", "answer": "accept"}
    got, stats = read(nlp, [record, good])
    assert list(got) == ["good"]
    assert stats.skipped == {reason: 1} and stats.where[reason] == ["record 1"]
    assert reason in TEXTCAT_REASONS
    with pytest.raises(TeachDataError, match=reason):
        read(nlp, [record, good], strict=True)


def test_unknown_labels_are_dropped_where_labels_are_given(nlp):
    records = [
        {"text": "t", "options": OPTIONS, "accept": ["SPORT"], "answer": "accept"},
        {"text": "u", "label": "OTHER", "answer": "accept"},
    ]
    got, stats = read(nlp, records, labels=["SPORT", "NEWS"])
    assert got == {"t": ({"SPORT": 1.0, "NEWS": 0.0}, None)}
    assert stats.skipped == {"unknown label": 1}
    assert stats.spans["unknown label"] == 2


def test_files_complete_files_and_gz(nlp, tmp_path):
    answers = tmp_path / "answers.jsonl.gz"
    with gzip.open(answers, "wt", encoding="utf8") as f:
        f.write(json.dumps({"text": "a b", "label": "X", "answer": "reject"}) + "\n\nnot json\n")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"text": "c d", "cats": {"X": 1.0, "Y": 0.0}}) + "\n", encoding="utf8")
    examples, reader = read_textcat_data(nlp, answers, gold)
    assert [eg.reference.cats for eg in examples] == [{"X": 0.0}, {"X": 1.0, "Y": 0.0}]
    assert reader.sources == [str(answers), str(gold)]
    assert reader.stats[0].skipped == {"malformed JSON": 1}
    assert reader.stats[0].where["malformed JSON"] == [f"{answers}:3"]
    assert reader.total().records == 3


def test_a_complete_source_reads_every_record_as_cats(nlp):
    with pytest.raises(Exception, match="missing key"):
        parse_textcat_record({"text": "t", "label": "A", "answer": "accept"}, complete=True)
    record = parse_textcat_record({"text": "t", "cats": {"A": 1.0}}, complete=True)
    assert record.complete and record.cats == {"A": 1.0}
    assert textcat_records_to_examples(nlp, [{"text": "t", "cats": {"A": 1.0}}], complete=True)[0].reference.cats == {
        "A": 1.0
    }


def test_registered_corpus_reads_and_caches(nlp, tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"text": "a b", "label": "X", "answer": "accept"}) + "\n", encoding="utf8")
    corpus = registry.readers.get(READER_NAME)(path=str(path), limit=0)
    first = list(corpus(nlp))
    assert [eg.reference.cats for eg in first] == [{"X": 1.0}]
    assert [eg.reference.cats for eg in corpus(nlp)] == [{"X": 1.0}]
    with pytest.raises(ValueError, match="needs a `path`"):
        list(registry.readers.get(READER_NAME)()(nlp))
