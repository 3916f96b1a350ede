"""`best_consistent`: the best analysis consistent with binary answers, and
`count_edits`: the edits between two analyses."""

import math

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span, SpanGroup

from spacy_binary_ner.consistent import Edits, best_consistent, count_edits, max_weight_spans
from spacy_binary_ner.constants import DEFAULT_SCORES_KEY
from spacy_binary_ner.records import parse_answer

EN_WORDS = ["Anna", "Lee", "met", "Tom", "in", "New", "York", "City", "."]
# Chinese, one character per token; offsets are code points.
ZH_TEXT = "张三在北京大学工作"


def scored_doc(words, candidates, spaces=None):
    """A doc whose scores span group holds the candidates (start, end, label, p)."""
    nlp = spacy.blank("xx")
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    group = SpanGroup(doc, spans=[Span(doc, s, e, label=label) for s, e, label, _ in candidates])
    group.attrs["scores"] = numpy.asarray([p for *_, p in candidates], dtype="float32")
    doc.spans[DEFAULT_SCORES_KEY] = group
    return doc


def answer(doc, start, end, label, verdict):
    """A parsed binary answer about tokens [start, end) of the doc."""
    span = doc[start:end]
    return parse_answer(
        {
            "text": doc.text,
            "spans": [{"start": span.start_char, "end": span.end_char, "label": label}],
            "answer": verdict,
        }
    )


def keys(spans):
    return [(s.start, s.end, s.label_) for s in spans]


def test_accepts_are_kept_even_where_the_model_scores_them_low():
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.9), (3, 4, "PER", 0.8)])
    found = best_consistent(doc, [answer(doc, 5, 8, "LOC", "accept")], threshold=0.5)
    assert keys(found) == [(0, 2, "PER"), (3, 4, "PER"), (5, 8, "LOC")]


def test_model_spans_that_overlap_an_accept_give_way():
    doc = scored_doc(EN_WORDS, [(5, 7, "LOC", 0.99), (0, 2, "PER", 0.9)])
    found = best_consistent(doc, [answer(doc, 5, 8, "LOC", "accept")], threshold=0.5)
    assert keys(found) == [(0, 2, "PER"), (5, 8, "LOC")]


def test_a_rejected_span_and_label_is_excluded_but_another_label_there_is_not():
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.95), (0, 2, "ORG", 0.7), (0, 1, "PER", 0.6)])
    found = best_consistent(doc, [answer(doc, 0, 2, "PER", "reject")], threshold=0.5)
    assert keys(found) == [(0, 2, "ORG")]


def test_candidates_below_the_threshold_are_left_out():
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.45), (3, 4, "PER", 0.3)])
    assert keys(best_consistent(doc, [], threshold=0.4)) == [(0, 2, "PER")]
    assert keys(best_consistent(doc, [], threshold=0.3)) == [(0, 2, "PER"), (3, 4, "PER")]


def test_overlaps_are_resolved_by_the_largest_sum_where_greedy_is_worse():
    # Greedy (most probable first) takes "New York City" (0.9) and nothing else
    # fits; "New York" (0.8) + "City" (0.8) have the larger sum of log-odds.
    candidates = [(5, 8, "LOC", 0.9), (5, 7, "LOC", 0.8), (7, 8, "ORG", 0.8)]
    doc = scored_doc(EN_WORDS, candidates)
    found = best_consistent(doc, [], threshold=0.5)
    assert keys(found) == [(5, 7, "LOC"), (7, 8, "ORG")]
    logodds = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert 2 * logodds(0.8) > logodds(0.9)


def test_the_threshold_is_the_zero_of_the_weights():
    # At threshold 0.2, 0.3 is worth taking: logit(0.3) - logit(0.2) > 0, and two
    # such spans beat one of 0.5 (0.405 * 2 > 1.386 is false: the one wins).
    candidates = [(0, 3, "PER", 0.5), (0, 1, "PER", 0.3), (1, 3, "PER", 0.3)]
    doc = scored_doc(EN_WORDS, candidates)
    assert keys(best_consistent(doc, [], threshold=0.2)) == [(0, 3, "PER")]
    candidates = [(0, 3, "PER", 0.4), (0, 1, "PER", 0.35), (1, 3, "PER", 0.35)]
    doc = scored_doc(EN_WORDS, candidates)
    assert keys(best_consistent(doc, [], threshold=0.2)) == [(0, 1, "PER"), (1, 3, "PER")]


def test_max_weight_spans_agrees_with_brute_force():
    rng = numpy.random.default_rng(0)
    for _ in range(50):
        n = 6
        candidates = []
        for _ in range(int(rng.integers(1, 8))):
            start = int(rng.integers(0, n))
            end = int(rng.integers(start + 1, n + 1))
            candidates.append((start, end, "X", float(rng.uniform(0.5, 0.99))))
        chosen = max_weight_spans(n, candidates, 0.5)
        assert _total(chosen, candidates) == pytest.approx(_brute_force(candidates))


def _weight(p):
    return math.log(p) - math.log1p(-p)


def _total(chosen, candidates):
    best = {}
    for s, e, label, p in candidates:
        best[(s, e, label)] = max(best.get((s, e, label), 0.0), p)
    return sum(_weight(best[key]) for key in chosen)


def _brute_force(candidates):
    top = 0.0
    for mask in range(1 << len(candidates)):
        picked = [c for i, c in enumerate(candidates) if mask >> i & 1]
        tokens = [t for s, e, *_ in picked for t in range(s, e)]
        if len(tokens) == len(set(tokens)):
            top = max(top, sum(_weight(p) for *_, p in picked))
    return top


def test_chinese_offsets_are_code_points():
    words = list(ZH_TEXT)
    doc = scored_doc(words, [(3, 7, "ORG", 0.9), (0, 2, "PER", 0.4), (3, 5, "LOC", 0.7)], spaces=[False] * len(words))
    accept = parse_answer({"text": ZH_TEXT, "spans": [{"start": 0, "end": 2, "label": "NAME"}], "answer": "accept"})
    found = best_consistent(doc, [accept], threshold=0.5)
    assert [(s.start_char, s.end_char, s.label_, s.text) for s in found] == [
        (0, 2, "NAME", "张三"),
        (3, 7, "ORG", "北京大学"),
    ]


def test_labels_limit_the_answers_and_the_candidates():
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.9), (5, 8, "LOC", 0.9)])
    accept = answer(doc, 3, 4, "ORG", "accept")
    assert keys(best_consistent(doc, [accept], labels=["PER"], threshold=0.5)) == [(0, 2, "PER")]
    assert keys(best_consistent(doc, [accept], labels=["ORG", "LOC"], threshold=0.5)) == [
        (3, 4, "ORG"),
        (5, 8, "LOC"),
    ]


@pytest.mark.parametrize(
    "verdicts,expected",
    [
        # The later of an accept and a reject of the same span and label wins.
        ([((0, 2, "PER"), "accept"), ((0, 2, "PER"), "reject")], [(0, 1, "PER")]),
        ([((0, 2, "PER"), "reject"), ((0, 2, "PER"), "accept")], [(0, 2, "PER")]),
        # Of two overlapping accepts, the later.
        # (the earlier one's tokens left free are filled by the model).
        ([((0, 2, "PER"), "accept"), ((1, 3, "ORG"), "accept")], [(0, 1, "PER"), (1, 3, "ORG")]),
        ([((1, 3, "ORG"), "accept"), ((0, 2, "PER"), "accept")], [(0, 2, "PER")]),
    ],
)
def test_conflicting_answers_the_later_wins(verdicts, expected):
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.95), (0, 1, "PER", 0.6)])
    answers = [answer(doc, s, e, label, verdict) for (s, e, label), verdict in verdicts]
    assert keys(best_consistent(doc, answers, threshold=0.5)) == expected


def test_ignores_misaligned_spans_and_closed_labels():
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.9), (5, 8, "LOC", 0.9)])
    ignored = parse_answer({"text": doc.text, "spans": [{"start": 0, "end": 3, "label": "PER"}], "answer": "ignore"})
    misaligned = parse_answer({"text": doc.text, "spans": [{"start": 1, "end": 3, "label": "PER"}], "answer": "accept"})
    assert keys(best_consistent(doc, [ignored, misaligned], threshold=0.5)) == [(0, 2, "PER"), (5, 8, "LOC")]
    complete = parse_answer({"text": doc.text, "spans": [{"start": 13, "end": 16, "label": "PER"}], "complete": True})
    assert keys(best_consistent(doc, [complete], threshold=0.5)) == [(3, 4, "PER")]


def test_the_threshold_comes_from_the_pipeline():
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"threshold": 0.7})
    doc = scored_doc(EN_WORDS, [(0, 2, "PER", 0.6)])
    assert best_consistent(doc, [], nlp=nlp) == []
    assert keys(best_consistent(doc, [], threshold=0.5, nlp=nlp)) == [(0, 2, "PER")]
    with pytest.raises(ValueError, match="threshold"):
        best_consistent(doc, [])


@pytest.mark.parametrize(
    "before,after,expected",
    [
        ([], [], Edits(0, 0, 0)),
        ([(0, 2, "PER")], [(0, 2, "PER")], Edits(0, 0, 0)),
        ([], [(0, 2, "PER"), (5, 8, "LOC")], Edits(2, 0, 0)),
        ([(0, 2, "PER"), (5, 8, "LOC")], [], Edits(0, 2, 0)),
        ([(0, 2, "PER")], [(0, 2, "ORG")], Edits(0, 0, 1)),
        # A boundary fix is a removal and an addition.
        ([(5, 7, "LOC")], [(5, 8, "LOC")], Edits(1, 1, 0)),
        ([(0, 2, "PER"), (3, 4, "PER"), (5, 7, "LOC")], [(0, 2, "ORG"), (5, 8, "LOC"), (8, 9, "X")], Edits(2, 2, 1)),
    ],
)
def test_count_edits(before, after, expected):
    edits = count_edits(before, after)
    assert edits == expected
    assert edits.total == sum(expected)
    assert count_edits(after, before) == Edits(expected.removed, expected.added, expected.relabelled)


def test_count_edits_reads_spans():
    doc = Doc(spacy.blank("en").vocab, words=EN_WORDS)
    before = [Span(doc, 0, 2, label="PER"), Span(doc, 5, 7, label="LOC")]
    assert count_edits(before, [(0, 2, "ORG")]) == Edits(added=0, removed=1, relabelled=1)
