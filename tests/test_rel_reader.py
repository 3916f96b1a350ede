"""The relation reader: head/child as span indices and as last tokens
(Prodigy's form, with or without head_span/child_span), complete annotations,
merging, and the account of every bad record."""

import json

import pytest
import spacy

from spacy_binary_ner.readstats import TeachDataError
from spacy_binary_ner.rel.reader import REL_REASONS, RelReader, create_rel_corpus, read_rel_data
from spacy_binary_ner.rel.targets import REL_ANSWERS_KEY, REL_COMPLETE_KEY, REL_ENTITIES_KEY

TEXT = "Anna Berg works for Acme Corp in Paris ."
# Tokens: Anna(0) Berg(1) works(2) for(3) Acme(4) Corp(5) in(6) Paris(7) .(8)
PER = {"start": 0, "end": 9, "label": "PER"}
ORG = {"start": 20, "end": 29, "label": "ORG"}
LOC = {"start": 33, "end": 38, "label": "LOC"}
SPANS = [PER, ORG, LOC]


def record(relations, answer="accept", spans=SPANS, **extra):
    return {"text": TEXT, "spans": spans, "relations": relations, "answer": answer, **extra}


def read(records, complete=False, **kwargs):
    reader = RelReader(spacy.blank("en"), **kwargs)
    reader.read_records(records, complete=complete)
    return reader.examples(), reader


def answers(eg):
    return sorted(tuple(a) for a in eg.reference.user_data[REL_ANSWERS_KEY])


WORK_FOR = (0, 2, 4, 6, "Work_For", 1.0)


@pytest.mark.parametrize(
    "rel,extra",
    [
        ({"head": 0, "child": 1, "label": "Work_For"}, {}),
        ({"head": 0, "child": 1, "label": "Work_For"}, {"relation_index": "spans"}),
        ({"head": 1, "child": 5, "label": "Work_For"}, {"relation_index": "tokens"}),
        ({"head": 1, "child": 5, "head_span": PER, "child_span": ORG, "label": "Work_For"}, {}),
        # Prodigy's form: the argument spans need not be in `spans`.
        ({"head": 1, "child": 5, "head_span": PER, "child_span": ORG, "label": "Work_For"}, {"spans": [LOC]}),
    ],
    ids=["span indices", "span indices, said", "last tokens", "head_span/child_span", "head_span not in spans"],
)
def test_both_head_child_forms_read_the_same_relation(rel, extra):
    examples, reader = read([record([rel], **extra)])
    (eg,) = examples
    assert answers(eg) == [WORK_FOR]
    assert reader.total().used == 1
    assert {(s.start, s.end, s.label_) for s in eg.reference.spans[REL_ENTITIES_KEY]} >= {(0, 2, "PER"), (4, 6, "ORG")}


def test_reader_setting_says_tokens():
    examples, _ = read([record([{"head": 1, "child": 5, "label": "Work_For"}])], relation_index="tokens")
    assert answers(examples[0]) == [WORK_FOR]


BAD = [
    ("no relations key", {"text": TEXT, "spans": SPANS, "answer": "accept"}, "no relations"),
    ("empty relations in a teach answer", record([]), "no relations"),
    ("relations not a list", record({"head": 0}), "bad relation"),
    ("head not an integer", record([{"head": "0", "child": 1, "label": "X"}]), "bad relation"),
    ("no label", record([{"head": 0, "child": 1}]), "bad relation"),
    ("same entity twice", record([{"head": 0, "child": 0, "label": "X"}]), "bad relation"),
    ("span index out of range", record([{"head": 0, "child": 3, "label": "X"}]), "relation argument not found"),
    (
        "no span ends on the token",
        record([{"head": 0, "child": 5, "label": "X"}], relation_index="tokens"),
        "relation argument not found",
    ),
    (
        "two spans end on the token",
        record(
            [{"head": 1, "child": 5, "label": "X"}],
            spans=[PER, {"start": 5, "end": 9, "label": "PER"}, ORG],
            relation_index="tokens",
        ),
        "ambiguous relation argument",
    ),
    (
        "head is not head_span's last token",
        record([{"head": 0, "child": 5, "head_span": PER, "child_span": ORG, "label": "X"}]),
        "relation argument not found",
    ),
    ("bad relation_index", record([{"head": 0, "child": 1, "label": "X"}], relation_index="chars"), "bad field"),
    (
        "misaligned span",
        record([{"head": 0, "child": 1, "label": "X"}], spans=[{"start": 0, "end": 3, "label": "PER"}, ORG]),
        "misaligned span",
    ),
    (
        "span text mismatch",
        record([{"head": 0, "child": 1, "label": "X"}], spans=[{**PER, "text": "Bob"}, ORG]),
        "span text mismatch",
    ),
    ("unknown answer", record([{"head": 0, "child": 1, "label": "X"}], answer="maybe"), "unknown answer"),
    ("no spans", record([{"head": 0, "child": 1, "label": "X"}], spans=[]), "no spans"),
    ("not an object", ["a list"], "not an object"),
    ("spans not a list", record([{"head": 0, "child": 1, "label": "X"}], spans={"start": 0}), "bad field"),
    (
        "head_span not a span",
        record([{"head": 1, "child": 5, "head_span": 3, "child_span": ORG, "label": "X"}]),
        "bad field",
    ),
]


@pytest.mark.parametrize("name,value,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_records_are_skipped_with_their_reason(name, value, reason):
    good = record([{"head": 0, "child": 1, "label": "Work_For"}])
    examples, reader = read([value, good])
    total = reader.total()
    assert total.records == 2 and total.used == 1
    assert dict(total.skipped) == {reason: 1}
    assert total.where[reason] == ["record 1"]
    assert reason in REL_REASONS
    with pytest.raises(TeachDataError, match="Fix: "):
        read([value], strict=True)


def test_ignored_complete_annotation_is_skipped():
    rows = [record([{"head": 0, "child": 1, "label": "Work_For"}], answer="ignore")]
    examples, reader = read(rows, complete=True)
    assert examples == [] and dict(reader.total().skipped) == {"ignore answer": 1}


def test_ignore_only_text_is_skipped_but_not_an_error_in_strict_mode():
    examples, reader = read([record([{"head": 0, "child": 1, "label": "Work_For"}], answer="ignore")], strict=True)
    assert examples == [] and dict(reader.total().skipped) == {"ignore answer": 1}


def test_answers_of_a_text_merge_and_the_later_wins():
    rel = [{"head": 0, "child": 1, "label": "Work_For"}]
    examples, reader = read(
        [record(rel, "reject"), record([{"head": 1, "child": 2, "label": "Based_In"}]), record(rel), record(rel)]
    )
    (eg,) = examples
    assert answers(eg) == [WORK_FOR, (4, 6, 7, 8, "Based_In", 1.0)]
    total = reader.total()
    assert (total.used, total.merged, total.examples) == (2, 1, 1)
    assert dict(total.skipped) == {"conflicting answers": 1, "duplicate answer": 1}
    assert total.used + sum(total.skipped.values()) == total.records


def test_unknown_labels_are_dropped_when_labels_are_given():
    examples, reader = read(
        [record([{"head": 0, "child": 1, "label": "Work_For"}, {"head": 1, "child": 2, "label": "Other"}])],
        labels=["Work_For"],
    )
    assert answers(examples[0]) == [WORK_FOR]
    assert reader.total().spans["unknown label"] == 1


def test_complete_annotation_needs_no_answer_and_sets_entities(tmp_path):
    path = tmp_path / "gold.jsonl"
    rows = [
        {"text": TEXT, "spans": SPANS, "relations": [{"head": 0, "child": 1, "label": "Work_For"}]},
        {"text": "Nobody is here .", "spans": [], "relations": []},
        {"text": TEXT + " Again", "spans": SPANS, "relations": [], "answer": "reject"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    examples, reader = read_rel_data(spacy.blank("en"), complete_paths=path)
    assert len(examples) == 2
    eg = examples[0]
    assert eg.reference.user_data[REL_COMPLETE_KEY] is True
    assert [(e.start, e.end, e.label_) for e in eg.reference.ents] == [(0, 2, "PER"), (4, 6, "ORG"), (7, 8, "LOC")]
    assert eg.reference[2].ent_iob_ == "O"
    assert [t.text for t in eg.predicted] == [t.text for t in eg.reference] and not eg.predicted.ents
    assert dict(reader.total().skipped) == {"rejected complete annotation": 1}


def test_teach_answer_leaves_other_tokens_unknown_for_ner():
    (eg,), _ = read([record([{"head": 0, "child": 1, "label": "Work_For"}])])
    assert eg.reference.user_data[REL_COMPLETE_KEY] is False
    assert eg.reference[2].ent_iob_ == ""


def test_record_tokens_are_used():
    words = TEXT.split(" ")
    tokens, start = [], 0
    for w in words:
        tokens.append({"text": w, "start": start, "end": start + len(w)})
        start += len(w) + 1
    tokens[0:2] = [{"text": "Anna Berg", "start": 0, "end": 9}]  # a tokenization of its own
    (eg,), _ = read([record([{"head": 0, "child": 4, "label": "Work_For"}], tokens=tokens, relation_index="tokens")])
    assert eg.reference[0].text == "Anna Berg"
    assert answers(eg) == [(0, 1, 3, 5, "Work_For", 1.0)]


def test_corpus_puts_entities_on_predicted_docs_when_asked(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps(record([{"head": 0, "child": 1, "label": "Work_For"}])) + "\n", encoding="utf8")
    nlp = spacy.blank("en")
    (eg,) = list(create_rel_corpus(path=str(path), entities_key="given")(nlp))
    assert [s.text for s in eg.predicted.spans["given"]] == ["Anna Berg", "Acme Corp", "Paris"]
    (eg,) = list(create_rel_corpus(path=str(path))(nlp))
    assert "given" not in eg.predicted.spans
    with pytest.raises(ValueError, match="needs a `path`"):
        list(create_rel_corpus()(nlp))
