"""Annotations complete for some labels only (`"complete": [labels]`): what a
corrected text says, from the record to the loss."""

import functools

import numpy
import pytest
import spacy
from spacy.util import fix_random_seed
from thinc.api import SGD

from spacy_binary_ner.constants import COMPLETE_LABELS_KEY
from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.records import RecordError, parse_answer, parse_record
from spacy_binary_ner.targets import build_targets, span_cells
from spacy_binary_ner.teach_reader import TeachReader

from .util import SMALL_MODEL, TEACH_RECORDS

TEXT = "Anna met Bob in Paris ."
# Anna = DOCTOR, Paris = LOC; the text is complete for DOCTOR and LOC only.
CORRECTED = {
    "text": TEXT,
    "spans": [{"start": 0, "end": 4, "label": "DOCTOR"}, {"start": 16, "end": 21, "label": "LOC"}],
    "answer": "accept",
    "complete": ["DOCTOR", "LOC"],
}


def test_record_keeps_the_labels_it_is_complete_for():
    record = parse_record(CORRECTED)
    assert record.complete is True
    assert record.complete_labels == ("DOCTOR", "LOC")
    assert parse_record({**CORRECTED, "complete": True}).complete_labels is None
    assert parse_record({**CORRECTED, "complete": ["LOC", "DOCTOR", "LOC"]}).complete_labels == ("LOC", "DOCTOR")


@pytest.mark.parametrize(
    "complete,message",
    [
        ([], "non-empty list"),
        (["LOC", 3], "non-empty list"),
        (["LOC", ""], "non-empty list"),
        ("LOC", "non-empty list"),
        (["LOC"], "label 'DOCTOR', not one of `complete`'s labels"),
    ],
)
def test_bad_complete_field_names_the_fix(complete, message):
    with pytest.raises(RecordError) as err:
        parse_record({**CORRECTED, "complete": complete})
    assert err.value.reason == "bad field"
    assert message in err.value.detail


def test_an_unusable_text_is_stored_but_never_learned_from():
    record = parse_answer({**CORRECTED, "answer": "reject"})
    assert (record.answer, record.complete_labels) == ("reject", ("DOCTOR", "LOC"))
    with pytest.raises(RecordError) as err:
        parse_record({**CORRECTED, "answer": "reject"})
    assert err.value.reason == "rejected complete annotation"
    nlp = spacy.blank("en")
    for answer in ("reject", "ignore"):
        reader = TeachReader(nlp)
        reader.read_records([parse_answer({**CORRECTED, "answer": answer})])
        assert reader.examples() == []
        expected = "rejected complete annotation" if answer == "reject" else "ignore answer"
        assert reader.total().skipped == {expected: 1}


def test_reader_leaves_tokens_missing_and_marks_the_labels_known():
    nlp = spacy.blank("en")
    (eg,) = records_to_examples(nlp, [CORRECTED])
    ref = eg.reference
    assert [(e.text, e.label_) for e in ref.ents] == [("Anna", "DOCTOR"), ("Paris", "LOC")]
    assert [t.ent_iob_ for t in ref] == ["B", "", "", "", "B", ""]
    runs = [(s.start, s.end, s.label_) for s in ref.spans[COMPLETE_LABELS_KEY]]
    assert runs == [(0, 6, "DOCTOR"), (0, 6, "LOC")]
    (full,) = records_to_examples(nlp, [{**CORRECTED, "complete": True}])
    assert COMPLETE_LABELS_KEY not in full.reference.spans
    assert [t.ent_iob_ for t in full.reference] == ["B", "O", "O", "O", "B", "O"]


def test_a_later_reject_of_an_accepted_span_leaves_it_unknown():
    nlp = spacy.blank("en")
    reject = {"text": TEXT, "spans": [{"start": 16, "end": 21, "label": "LOC"}], "answer": "reject"}
    (eg,) = records_to_examples(nlp, [CORRECTED, reject])
    runs = [(s.start, s.end, s.label_) for s in eg.reference.spans[COMPLETE_LABELS_KEY]]
    assert runs == [(0, 4, "DOCTOR"), (5, 6, "DOCTOR"), (0, 4, "LOC"), (5, 6, "LOC")]
    assert [(s.text, s.label_) for s in eg.reference.spans["incorrect_spans"]] == [("Paris", "LOC")]


def test_later_complete_annotation_with_other_labels_is_not_a_duplicate():
    nlp = spacy.blank("en")
    reader = TeachReader(nlp)
    reader.read_records([CORRECTED, {**CORRECTED, "complete": ["DOCTOR", "LOC", "PERSON"]}])
    (eg,) = reader.examples()
    assert {s.label_ for s in eg.reference.spans[COMPLETE_LABELS_KEY]} == {"DOCTOR", "LOC", "PERSON"}
    assert reader.total().skipped.get("duplicate answer", 0) == 0


# Cells of TEXT (tokens Anna met Bob in Paris .), max span length 2:
# (start, width, label) -> (target, weight) with unknown_weight 0.01.
LABELS = ["DOCTOR", "LOC", "PERSON"]
TABLE = [
    ((0, 0, "DOCTOR"), (1.0, 1.0)),  # the corrected entity
    ((0, 0, "PERSON"), (0.0, 1.0)),  # a known entity, another label
    ((2, 0, "DOCTOR"), (0.0, 1.0)),  # "Bob": not a DOCTOR (complete for DOCTOR)
    ((2, 0, "LOC"), (0.0, 1.0)),  # nor a LOC
    ((2, 0, "PERSON"), (0.0, 0.01)),  # PERSON was not asked about: unknown
    ((1, 1, "PERSON"), (0.0, 0.01)),  # "met Bob"
    ((3, 1, "PERSON"), (0.0, 1.0)),  # "in Paris" overlaps an entity
    ((4, 0, "LOC"), (1.0, 1.0)),
]


@pytest.mark.parametrize("cell,expected", TABLE)
def test_targets_table(cell, expected):
    nlp = spacy.blank("en")
    (eg,) = records_to_examples(nlp, [CORRECTED])
    truths, weights = build_targets([eg], LABELS, 2, 0.01, "incorrect_spans")
    start, width, label = cell
    # Rows are start-major: each start has its widths (see spacy_binary_ner.spans).
    row = start * 2 + width
    k = LABELS.index(label)
    assert (truths[row, k], pytest.approx(weights[row, k])) == expected


def _probs(ner, doc):
    scores = ner.predict([doc])
    probs = 1 / (1 + numpy.exp(-ner.model.ops.to_numpy(scores)))
    full = numpy.zeros((len(doc), ner.max_span_length, len(ner.labels)))
    full[span_cells(len(doc), ner.max_span_length)] = probs
    return full


@functools.lru_cache(maxsize=1)
def _trained_bytes() -> bytes:
    return _train().to_bytes()


def _trained_nlp():
    """A pipe that has learned "Bob" as a PERSON, no prior on unknown spans."""
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "unknown_weight": 0.0})
    return nlp.from_bytes(_trained_bytes())


def _train():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "unknown_weight": 0.0})
    bob = [
        {"text": "Anna met Bob .", "spans": [{"start": 9, "end": 12, "label": "PERSON"}], "answer": "accept"},
        {"text": "Anna is here .", "spans": [{"start": 0, "end": 4, "label": "DOCTOR"}], "answer": "accept"},
    ]
    examples = records_to_examples(nlp, bob + TEACH_RECORDS)
    nlp.config["initialize"]["components"]["binary_ner"] = {"labels": LABELS}
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        nlp.update(examples, sgd=optimizer)
    return nlp


def test_a_corrected_text_pushes_its_labels_only():
    nlp = _trained_nlp()
    ner = nlp.get_pipe("binary_ner")
    corrected = records_to_examples(nlp, [CORRECTED])
    _, weights = build_targets(corrected, ner.labels, ner.max_span_length, 0.0, "incorrect_spans")
    scores = ner.predict([eg.predicted for eg in corrected])
    _, d_scores = ner.get_loss(corrected, scores)
    d_grid, w_grid = (numpy.full((6, ner.max_span_length, 3), numpy.nan) for _ in range(2))
    d_grid[span_cells(6, ner.max_span_length)] = ner.model.ops.to_numpy(d_scores)
    w_grid[span_cells(6, ner.max_span_length)] = weights
    doctor, loc, person = (ner.labels.index(label) for label in ("DOCTOR", "LOC", "PERSON"))
    assert d_grid[0, 0, doctor] < 0  # Anna as DOCTOR: pushed up
    # "met", "Bob", "in", "met Bob", "Bob in": known not DOCTOR / LOC; unknown for PERSON.
    cells = [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]
    assert [tuple(w_grid[i, w]) for i, w in cells] == [(1.0, 1.0, 0.0)] * len(cells)
    assert all(d_grid[i, w, loc] > 0 and d_grid[i, w, doctor] > 0 for i, w in cells)
    assert all(d_grid[i, w, person] == 0 for i, w in cells)


def _logits(ner, doc):
    p = numpy.clip(_probs(ner, doc), 1e-7, 1 - 1e-7)
    return numpy.log(p / (1 - p))


def test_a_corrected_text_moves_its_labels_and_leaves_the_others_unknown():
    """One update on "Zed met Bob ." corrected to Zed = DOCTOR, complete for
    DOCTOR and LOC, against the same update complete for every label (plain
    SGD, so that a step follows the gradient's size)."""
    text = "Zed met Bob ."
    corrected = {"text": text, "spans": [{"start": 0, "end": 3, "label": "DOCTOR"}], "answer": "accept"}
    before, moved = None, {}
    for complete in (["DOCTOR", "LOC"], True):
        nlp = _trained_nlp()
        ner = nlp.get_pipe("binary_ner")
        doc = nlp.make_doc(text)
        before = _logits(ner, doc)
        nlp.update(records_to_examples(nlp, [{**corrected, "complete": complete}]), sgd=SGD(0.1))
        moved[complete is True] = _logits(ner, doc) - before
    doctor, loc, person = (ner.labels.index(label) for label in ("DOCTOR", "LOC", "PERSON"))
    bob = (2, 0)
    assert before[bob][person] > 1.0  # the pipe takes "Bob" for a PERSON
    partial, full = moved[False], moved[True]
    assert partial[0, 0, doctor] > 0
    # "met", "Bob", ".", "met Bob", "Bob .": known to be no LOC.
    assert sum(partial[i, w, loc] for i, w in [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1)]) < 0
    # Told nothing about PERSON, the partial update moves it much less than
    # the complete one, which says "Bob" is no PERSON (PERSON shares the
    # spans' representation, so it moves a little).
    assert full[bob][person] < 0
    assert abs(partial[bob][person]) < 0.5 * abs(full[bob][person])
