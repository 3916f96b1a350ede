"""Proposers: what the model would ask about each text.

The loop asks a proposer for candidate spans of a batch of docs, and for a
lookup of any span's probability (to score pattern matches). `BinaryNERProposer`
is the one for a `binary_ner` component; any object with the same call works
(the simulator's spaCy `beam_ner` peer is one).
"""

from typing import List, Protocol, Tuple

import numpy
from spacy.tokens import Doc

from ..pipeline import BinaryNER
from ..spans import cell_coordinates, n_span_cells
from .tasks import Candidate, Lookup

Proposals = List[Tuple[List[Candidate], Lookup]]


class Proposer(Protocol):
    """Candidate spans of each doc, and a lookup of any span's probability."""

    def __call__(self, docs: List[Doc]) -> Proposals: ...


def _no_span(start: int, end: int, label: str) -> float:
    return 0.0


class BinaryNERProposer:
    """The spans a `binary_ner` component scores highest in each doc.

    pipe (BinaryNER): The component.
    min_score (float): Smallest probability of a proposed span.
    max_per_text (int): Most spans proposed per doc, highest first; a doc with
        none above `min_score` still proposes its best span, so the stream
        never runs dry while texts remain.
    """

    def __init__(self, pipe: BinaryNER, min_score: float = 0.01, max_per_text: int = 8) -> None:
        if max_per_text < 1:
            raise ValueError(f"max_per_text must be at least 1, not {max_per_text}")
        self.pipe = pipe
        self.min_score = min_score
        self.max_per_text = max_per_text

    def __call__(self, docs: List[Doc]) -> Proposals:
        """Per doc: the proposed spans, and a lookup of any span's probability."""
        pipe = self.pipe
        L, labels = pipe.max_span_length, pipe.labels
        K = len(labels)
        label_index = {label: k for k, label in enumerate(labels)}
        logits = pipe.model.ops.to_numpy(pipe.predict(docs))
        probs = 1.0 / (1.0 + numpy.exp(-logits))
        out: Proposals = []
        offset = 0
        for doc in docs:
            n = len(doc)
            rows = n_span_cells(n, L)
            doc_probs = probs[offset : offset + rows]
            offset += rows
            if rows == 0:
                out.append(([], _no_span))
                continue
            starts, widths = cell_coordinates(n, L)
            flat = doc_probs.ravel()
            above = numpy.flatnonzero(flat >= self.min_score)
            if len(above) > self.max_per_text:
                above = above[numpy.argpartition(-flat[above], self.max_per_text - 1)[: self.max_per_text]]
            elif len(above) == 0:
                above = numpy.array([int(flat.argmax())])
            above = above[numpy.argsort(-flat[above], kind="stable")]
            candidates = [
                (int(starts[i // K]), int(starts[i // K] + widths[i // K] + 1), labels[i % K], float(flat[i]))
                for i in above
            ]
            table = numpy.zeros((n, L, K), dtype=doc_probs.dtype)
            table[starts, widths] = doc_probs

            def lookup(start: int, end: int, label: str, table: numpy.ndarray = table) -> float:
                width = end - start - 1
                k = label_index.get(label)
                if k is None or width >= table.shape[1]:
                    return 0.0
                return float(table[start, width, k])

            out.append((candidates, lookup))
        return out
