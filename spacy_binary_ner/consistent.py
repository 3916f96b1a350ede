"""The best analysis of a text consistent with its binary answers (what
`silver-to-gold` pre-highlights), and the edits between two analyses (what a
correction costs in the simulator's cost model)."""

import math
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span

from .constants import DEFAULT_SCORES_KEY
from .pipeline import find_binary_ner
from .records import Record, align_span

# A span of a doc: (start token, end token exclusive, label).
SpanKey = Tuple[int, int, str]


class Edits(NamedTuple):
    """The edits that turn one analysis into another: spans added, removed,
    and relabelled (the same token range with another label). A span whose
    boundaries change is one removal and one addition."""

    added: int
    removed: int
    relabelled: int

    @property
    def total(self) -> int:
        """All edits."""
        return self.added + self.removed + self.relabelled


def count_edits(before: Iterable[Union[Span, SpanKey]], after: Iterable[Union[Span, SpanKey]]) -> Edits:
    """The edits from the analysis `before` (e.g. what the page pre-highlights)
    to `after` (e.g. the corrected annotation).

    before (Iterable[Union[Span, SpanKey]]): The spans before, as `Span`s or
        `(start, end, label)` (any offsets, the same in both).
    after (Iterable[Union[Span, SpanKey]]): The spans after.
    RETURNS (Edits): Spans added, removed and relabelled.
    """
    old, new = set(map(_key, before)), set(map(_key, after))
    gone, came = old - new, new - old
    gone_ranges: Dict[Tuple[int, int], int] = {}
    for start, end, _ in gone:
        gone_ranges[(start, end)] = gone_ranges.get((start, end), 0) + 1
    relabelled = 0
    for start, end, _ in sorted(came):
        if gone_ranges.get((start, end), 0) > 0:
            gone_ranges[(start, end)] -= 1
            relabelled += 1
    return Edits(added=len(came) - relabelled, removed=len(gone) - relabelled, relabelled=relabelled)


def best_consistent(
    doc: Doc,
    answers: Sequence[Record],
    labels: Optional[Sequence[str]] = None,
    threshold: Optional[float] = None,
    *,
    nlp: Optional[Language] = None,
) -> List[Span]:
    """The best analysis of a doc consistent with the binary answers about its
    text: every accept kept, no rejected span with its label, the rest filled
    with the model's spans.

    The filling is the maximum a posteriori analysis under the model's
    independent sigmoids, with the decision threshold `t` as the price of a
    false entity against a missed one: among the candidates with probability
    `p >= t` that overlap no accept, no rejected (span, label) and no other
    chosen span, the set with the largest sum of `log(p / (1 - p)) -
    log(t / (1 - t))` (at `t = 0.5` the plain log-odds). It is found exactly by
    weighted interval scheduling, a dynamic program over the tokens; the
    pipe's greedy decoding (most probable first) can miss it.

    Answers are aligned to the doc's tokens strictly (a misaligned span is
    left out) and, where two conflict, the later wins, as the reader reads
    them: an accept and a reject of the same span and label, or two
    overlapping accepts. Ignored answers and rejected complete annotations
    are left out; a complete annotation's spans are accepts, and the labels
    it is complete for get no model spans.

    doc (Doc): The text, processed by a pipeline with a `binary_ner` pipe
        (its candidates with their probabilities in the span group
        `scores_key`, which holds those at or above `candidates_threshold`).
    answers (Sequence[Record]): The parsed answers about the text
        (`records.parse_answer`), in the order they were given.
    labels (Optional[Sequence[str]]): The labels considered: answers and
        candidates of other labels are left out. None: all.
    threshold (Optional[float]): Smallest probability of a model span; None:
        the pipe's `threshold` (needs `nlp`).
    nlp (Optional[Language]): The pipeline that processed the doc: its
        `binary_ner`'s `threshold` and `scores_key`. None: the default
        scores key, and `threshold` must be given.
    RETURNS (List[Span]): The analysis, non-overlapping, in text order.
    """
    scores_key = DEFAULT_SCORES_KEY
    if nlp is not None:
        pipe = find_binary_ner(nlp)[1]
        scores_key = pipe.cfg["scores_key"] or DEFAULT_SCORES_KEY
        if threshold is None:
            threshold = float(pipe.cfg["threshold"])
    if threshold is None:
        raise ValueError("best_consistent needs a threshold, or the pipeline (nlp=...) to take its threshold from")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    allowed = set(labels) if labels is not None else None
    accepts, rejects, closed = answered_spans(doc, answers, allowed)
    taken = [False] * len(doc)
    for start, end, _ in accepts:
        taken[start:end] = [True] * (end - start)
    candidates: List[Tuple[int, int, str, float]] = []
    if scores_key in doc.spans:
        group = doc.spans[scores_key]
        probs = group.attrs.get("scores", [])
        for span, p in zip(group, probs):
            key = (span.start, span.end, span.label_)
            if p < threshold or key in rejects or closed is None or span.label_ in closed:
                continue
            if any(taken[span.start : span.end]):
                continue
            if allowed is None or span.label_ in allowed:
                candidates.append((span.start, span.end, span.label_, float(p)))
    chosen = max_weight_spans(len(doc), candidates, threshold)
    found = sorted(accepts + chosen)
    return [Span(doc, start, end, label=label) for start, end, label in found]


def answered_spans(
    doc: Doc, answers: Sequence[Record], labels: Optional[Set[str]] = None
) -> Tuple[List[SpanKey], Set[SpanKey], Optional[Set[str]]]:
    """The answers about a doc's text as token spans, the later answer winning
    where two conflict (see `best_consistent`).

    doc (Doc): The text.
    answers (Sequence[Record]): The parsed answers, in the order given.
    labels (Optional[Set[str]]): The labels kept; None: all.
    RETURNS (Tuple[List[SpanKey], Set[SpanKey], Optional[Set[str]]]): The
        accepts (not overlapping), the rejected spans and labels, and the
        labels that a complete annotation closed (every span of theirs is
        known; None: every label).
    """
    starts = [token.idx for token in doc]
    ends = [token.idx + len(token) for token in doc]
    decided: Dict[SpanKey, str] = {}
    closed: Optional[Set[str]] = set()
    for record in reversed(answers):
        if record.answer not in ("accept", "reject") or (record.complete and record.answer == "reject"):
            continue
        if record.complete and closed is not None:
            closed = closed | set(record.complete_labels) if record.complete_labels is not None else None
        for start, end, label in record.spans:
            tokens = align_span(starts, ends, start, end, "strict")
            if tokens is None or (labels is not None and label not in labels):
                continue
            decided.setdefault((tokens[0], tokens[1], label), record.answer)
    taken = [False] * len(doc)
    accepts: List[SpanKey] = []
    for (start, end, label), answer in decided.items():  # latest first
        if answer == "accept" and not any(taken[start:end]):
            taken[start:end] = [True] * (end - start)
            accepts.append((start, end, label))
    rejects = {key for key, answer in decided.items() if answer == "reject"}
    if labels is not None and closed is not None:
        closed &= labels
    return sorted(accepts), rejects, closed


def max_weight_spans(
    n_tokens: int, candidates: Sequence[Tuple[int, int, str, float]], threshold: float
) -> List[SpanKey]:
    """The non-overlapping candidates with the largest sum of weights
    `logit(p) - logit(threshold)`: weighted interval scheduling over the
    tokens. Among equal sums, a span is taken rather than left out, and the
    more probable one first.

    n_tokens (int): Length of the doc.
    candidates (Sequence[Tuple[int, int, str, float]]): `(start, end, label,
        probability)`, token offsets, end exclusive.
    threshold (float): The decision threshold, strictly between 0 and 1.
    RETURNS (List[SpanKey]): The chosen spans, in text order.
    """
    bias = _logit(threshold)
    by_end: Dict[int, List[Tuple[int, int, str, float]]] = {}
    for start, end, label, p in sorted(candidates, key=lambda c: (-c[3], c[0], c[1], c[2])):
        by_end.setdefault(end, []).append((start, end, label, _logit(p) - bias))
    # best[k]: the largest sum over tokens [0, k); back[k]: the span ending at k taken, if any.
    best = [0.0] * (n_tokens + 1)
    back: List[Optional[SpanKey]] = [None] * (n_tokens + 1)
    for k in range(1, n_tokens + 1):
        best[k] = best[k - 1]
        for start, end, label, weight in by_end.get(k, []):
            value = best[start] + weight
            if value > best[k] or (value == best[k] and back[k] is None):
                best[k], back[k] = value, (start, end, label)
    chosen: List[SpanKey] = []
    k = n_tokens
    while k > 0:
        span = back[k]
        if span is None:
            k -= 1
        else:
            chosen.append(span)
            k = span[0]
    return chosen[::-1]


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p) - math.log1p(-p)


def _key(span: Union[Span, SpanKey]) -> SpanKey:
    if isinstance(span, Span):
        return (span.start, span.end, span.label_)
    start, end, label = span
    return (int(start), int(end), str(label))
