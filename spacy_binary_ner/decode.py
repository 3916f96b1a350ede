"""From the `binary_ner` model's logits to annotations: the entities of each
doc and the span groups of candidate spans with their probabilities."""

from typing import Iterable, List, Mapping, Tuple

import numpy
from spacy.tokens import Doc, Span, SpanGroup

from .spans import cell_coordinates, n_span_cells
from .targets import blocked_tokens


def annotate(
    docs: Iterable[Doc],
    logits: numpy.ndarray,
    max_span_length: int,
    labels: Tuple[str, ...],
    threshold: float,
    groups: Mapping[str, float],
    overwrite_ents: bool,
) -> None:
    """Write entities and span groups to the docs.

    docs (Iterable[Doc]): The docs, in the order the model scored them.
    logits (numpy.ndarray): The model's logits, one row per candidate span
        (see `spacy_binary_ner.spans`), one column per label.
    max_span_length (int): Longest span the model scores, in tokens.
    labels (Tuple[str, ...]): The labels, in the order of the columns.
    threshold (float): Smallest probability for a span to become an entity.
    groups (Mapping[str, float]): Span groups to write: key, and the smallest
        probability of a (span, label) kept in it.
    overwrite_ents (bool): Whether predicted entities replace the earlier
        entities they overlap.
    """
    # The sigmoid is monotonic: labels are ranked and thresholds compared
    # on the logits, and only the probabilities kept are computed (a
    # sigmoid of the whole (spans x labels) matrix was 2% of inference).
    if logits.size:
        best = logits.argmax(axis=1)
        best_p = sigmoid(numpy.take_along_axis(logits, best[:, None], axis=1)[:, 0])
    else:  # no spans, or no labels: nothing can pass any threshold
        best = numpy.zeros(len(logits), dtype="int64")
        best_p = numpy.full(len(logits), -1.0, dtype="float32")
    masks = {key: logits >= logit(min_p) for key, min_p in groups.items()}
    offset = 0
    for doc in docs:
        n_rows = n_span_cells(len(doc), max_span_length)
        rows = slice(offset, offset + n_rows)
        offset += n_rows
        starts, widths = cell_coordinates(len(doc), max_span_length)
        set_entities(doc, best[rows], best_p[rows], starts, widths, labels, threshold, overwrite_ents)
        for key, mask in masks.items():
            doc.spans[key] = span_group(doc, logits[rows], mask[rows], starts, widths, labels)


def set_entities(
    doc: Doc,
    best: numpy.ndarray,
    best_p: numpy.ndarray,
    starts: numpy.ndarray,
    widths: numpy.ndarray,
    labels: Tuple[str, ...],
    threshold: float,
    overwrite_ents: bool,
) -> None:
    """Decode one doc: its spans' best labels and their probabilities, a row
    per scored span; `starts` and `widths` say which span each row is.
    Blocked tokens stay blocked; earlier entities stay, or with
    `overwrite_ents` give way to the predictions that overlap them."""
    existing = list(doc.ents)
    blocked = blocked_tokens(doc)
    taken = blocked.copy()
    if not overwrite_ents:
        for ent in existing:
            taken[ent.start : ent.end] = True
    predicted = []
    rows = numpy.flatnonzero(best_p >= threshold)
    # Most probable first; among equals, earlier start, then shorter.
    for row in rows[numpy.argsort(-best_p[rows], kind="stable")]:
        start, end = int(starts[row]), int(starts[row] + widths[row] + 1)
        if not taken[start:end].any():
            taken[start:end] = True
            predicted.append(Span(doc, start, end, label=labels[best[row]]))
    if overwrite_ents:
        existing = [ent for ent in existing if not taken[ent.start : ent.end].any()]
    entities = sorted(existing + predicted, key=lambda span: (span.start, span.end))
    if blocked.any():
        doc.set_ents(entities, blocked=_runs(doc, blocked), default="outside")
    else:
        doc.ents = entities


def span_group(
    doc: Doc,
    logits: numpy.ndarray,
    mask: numpy.ndarray,
    starts: numpy.ndarray,
    widths: numpy.ndarray,
    labels: Tuple[str, ...],
) -> SpanGroup:
    """The spans and labels where `mask` is set, most probable first, with
    their probabilities in `attrs["scores"]`."""
    rows, label_ids = numpy.nonzero(mask)
    scores = sigmoid(logits[rows, label_ids])
    order = numpy.argsort(-scores, kind="stable")
    rows, label_ids = rows[order].tolist(), label_ids[order].tolist()
    span_starts = starts[rows].tolist()
    span_ends = (starts[rows] + widths[rows] + 1).tolist()
    spans = [Span(doc, s, e, label=labels[k]) for s, e, k in zip(span_starts, span_ends, label_ids)]
    group = SpanGroup(doc, spans=spans)
    group.attrs["scores"] = scores[order]
    return group


def sigmoid(logits: numpy.ndarray) -> numpy.ndarray:
    """The logistic function, as Thinc's `ops.sigmoid` computes it."""
    return 1.0 / (1.0 + numpy.exp(-numpy.clip(logits, -20.0, 20.0)))


def logit(p: float) -> float:
    """The logit whose probability is `p`: `p` itself for an empty threshold
    (0: every logit passes; 1: none below the largest finite)."""
    if p <= 0.0:
        return -numpy.inf
    if p >= 1.0:
        return numpy.inf
    return float(numpy.log(p) - numpy.log1p(-p))


def _runs(doc: Doc, mask: numpy.ndarray) -> List[Span]:
    """The maximal runs of tokens where `mask` is set, as spans."""
    padded = numpy.concatenate([[False], mask, [False]]).astype("int8")
    edges = numpy.flatnonzero(numpy.diff(padded))
    return [Span(doc, int(start), int(end)) for start, end in zip(edges[::2], edges[1::2])]
