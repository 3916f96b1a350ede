"""The candidate spans `binary_ner` scores, and the order of their rows.

Every span `(start, start + w + 1)` with `w < max_span_length` that fits in
its doc is a candidate: cell `(start, w)` of a doc's `(n_tokens,
max_span_length)` grid. The model gives one row per candidate, docs in batch
order, then by start token, then by width. The loss targets
(`spacy_binary_ner.targets`), the architectures (`spacy_binary_ner.models`)
and the pipe's decoding all read the layout from here.

This module imports numpy and torch only, so a user's PyTorch module may use
`span_index` without depending on spaCy.
"""

from functools import lru_cache
from typing import Tuple

import numpy
import torch

# Longest doc whose cell coordinates are cached (a long doc's take 8 bytes a cell).
_CACHED_TOKENS = 4096


def span_cells(n_tokens: int, max_span_length: int) -> numpy.ndarray:
    """Which (start, width) cells of a doc are spans the model scores.

    n_tokens (int): Length of the doc.
    max_span_length (int): Longest span, in tokens.
    RETURNS (numpy.ndarray): Boolean mask of shape (n_tokens, max_span_length),
        True where start + width < n_tokens. The model's rows for a doc are
        these cells in row-major order: by start token, then by width.
    """
    starts = numpy.arange(n_tokens)[:, None]
    return starts + numpy.arange(max_span_length)[None, :] < n_tokens


def n_span_cells(n_tokens: int, max_span_length: int) -> int:
    """Number of spans the model scores in a doc of `n_tokens` tokens."""
    w = min(n_tokens, max_span_length)
    return w * n_tokens - w * (w - 1) // 2


def cell_coordinates(n_tokens: int, max_span_length: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Start token and width (end - start - 1) of each span the model scores,
    in the model's row order (`span_cells` in row-major order), as int32.
    Read only; cached for docs up to 4,096 tokens, which then share them.

    n_tokens (int): Length of the doc.
    max_span_length (int): Longest span, in tokens.
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): Starts and widths.
    """
    if n_tokens <= _CACHED_TOKENS:
        return _cached_cell_coordinates(n_tokens, max_span_length)
    return _cell_coordinates(n_tokens, max_span_length)


@lru_cache(maxsize=512)
def _cached_cell_coordinates(n_tokens: int, max_span_length: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    return _cell_coordinates(n_tokens, max_span_length)


def _cell_coordinates(n_tokens: int, max_span_length: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    # Built directly, not as numpy.nonzero(span_cells(...)): no (n x L) int64
    # temporaries, which for a long doc were most of its memory at inference.
    counts = numpy.minimum(max_span_length, n_tokens - numpy.arange(n_tokens, dtype=numpy.int32))
    starts = numpy.repeat(numpy.arange(n_tokens, dtype=numpy.int32), counts)
    first = (numpy.cumsum(counts, dtype=numpy.int32) - counts).astype(numpy.int32)
    widths = numpy.arange(len(starts), dtype=numpy.int32)
    widths -= numpy.repeat(first, counts)
    starts.flags.writeable = False
    widths.flags.writeable = False
    return starts, widths


def span_index(lengths: torch.Tensor, max_span_length: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The candidate spans of a padded batch, in the order `binary_ner` expects.

    lengths (torch.Tensor): Number of tokens per doc, shape (batch,).
    max_span_length (int): Longest span, in tokens.
    RETURNS (Tuple[torch.Tensor, torch.Tensor, torch.Tensor]): `(doc, start,
        end)`, each a LongTensor of shape (n_spans,): the doc index, the first
        token and the last token (inclusive) of every span (start, start + w)
        with w < max_span_length and start + w < length, ordered by doc, then
        start, then width. Index a padded (batch, max_len, d) tensor with
        `H[doc, start]` and `H[doc, end]`.
    """
    lengths = lengths.to(torch.int64)
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
    doc_start = torch.cumsum(lengths, 0) - lengths
    start = torch.arange(int(lengths.sum()), device=lengths.device) - doc_start[doc]
    widths = torch.arange(max_span_length, device=lengths.device)
    fits = start[:, None] + widths[None, :] < lengths[doc][:, None]
    token, width = fits.nonzero(as_tuple=True)
    return doc[token], start[token], start[token] + width
