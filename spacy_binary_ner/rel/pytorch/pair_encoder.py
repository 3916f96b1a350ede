"""The built-in pair encoder of `binary_rel`: token vectors and candidate
pairs of entities in, one vector per pair out. Imports only torch, so it
follows the same contract as a user's own module (`spacy_binary_ner.rel.model`).
"""

import torch
from torch import nn

# Upper bounds (inclusive) of the width and distance buckets, in tokens.
BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class PairEncoder(nn.Module):
    """A pair of entities as its two entities (first token, last token and mean
    of each), their widths and distance (bucketed embeddings, the distance
    signed by which entity comes first) and the mean of the tokens between
    them, through a hidden ReLU layer.

    n_in (int): Width of the token vectors.
    width (int): Width of the pair vectors (the hidden layer).
    embed_width (int): Width of the width and distance embeddings.
    dropout (float): Dropout on the pair vectors in training.
    """

    def __init__(self, n_in: int, width: int, embed_width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("buckets", torch.tensor(BUCKETS, dtype=torch.int64), persistent=False)
        n_buckets = len(BUCKETS) + 1
        self.widths = nn.Embedding(n_buckets, embed_width)
        self.distances = nn.Embedding(2 * n_buckets, embed_width)
        self.hidden = nn.Sequential(nn.Linear(7 * n_in + 3 * embed_width, width), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, X: torch.Tensor, lengths: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """X (torch.Tensor): Token vectors, (batch, max_len, n_in), zero past
        each text's length. lengths (torch.Tensor): Tokens per text, (batch,).
        pairs (torch.Tensor): (n_pairs, 5) int64: text, head start, head end,
        child start, child end (token offsets, ends exclusive).
        RETURNS (torch.Tensor): (n_pairs, width)."""
        pairs = pairs.to(X.device)
        doc, hs, he, cs, ce = pairs.unbind(dim=1)
        # cumulative[b, k] is the sum of the first k token vectors of text b.
        cumulative = torch.cat([X.new_zeros(X.shape[0], 1, X.shape[2]), X.cumsum(dim=1)], dim=1)

        def mean(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            n = (end - start).clamp(min=1)
            return (cumulative[doc, end] - cumulative[doc, start]) / n[:, None].to(X.dtype)

        gap_start = torch.minimum(he, ce)
        gap_end = torch.maximum(hs, cs).clamp(min=gap_start)
        head_first = (hs <= cs).long()
        parts = [
            X[doc, hs],
            X[doc, he - 1],
            mean(hs, he),
            X[doc, cs],
            X[doc, ce - 1],
            mean(cs, ce),
            mean(gap_start, gap_end),
            self.widths(self._bucket(he - hs)),
            self.widths(self._bucket(ce - cs)),
            self.distances(self._bucket(gap_end - gap_start) * 2 + head_first),
        ]
        return self.hidden(torch.cat(parts, dim=1))

    def _bucket(self, n: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(n, self.buckets)
