"""PyTorch module that turns token vectors into one vector per candidate span.

This module imports only torch: the Thinc wiring lives in
``spacy_binary_ner.models.span_scorer``. The code here is the reference; the
CPU speed kernels it switches to (``kernels=True``) are in ``cpu_kernels`` and
are tested equal to it.
"""

from typing import Optional, Tuple, cast

import torch
from torch import nn

from ...spans import span_index
from . import cpu_kernels


class SpanEncoder(nn.Module):
    """Encode every span of up to ``max_span_length`` tokens in a padded batch.

    A span (i, i + w) is represented by ``relu(start_i + end_{i+w} +
    mean_{i..i+w} + width_w)``, where ``start``, ``end`` and ``mean`` are linear
    projections of (optionally BiLSTM-contextualised) token vectors. The mean
    over the span comes from prefix sums, so every span costs the same whatever
    its length: long Chinese character spans are as cheap as short ones.

    n_in (int): Width of the incoming token vectors.
    hidden_width (int): Width of the span vectors.
    max_span_length (int): Longest span, in tokens.
    lstm_width (int): Output width of the BiLSTM (both directions together).
    lstm_depth (int): BiLSTM layers; 0 feeds the token vectors straight in.
    dropout (float): Dropout on token and span vectors during training.
    kernels (bool): Use the CPU speed kernels of `cpu_kernels` (same numbers);
        False runs the plain code of this module.
    """

    def __init__(
        self,
        n_in: int,
        hidden_width: int,
        max_span_length: int,
        lstm_width: int = 128,
        lstm_depth: int = 1,
        dropout: float = 0.1,
        kernels: bool = True,
    ) -> None:
        super().__init__()
        if max_span_length < 1:
            raise ValueError(f"max_span_length must be at least 1, got {max_span_length}")
        if lstm_depth and lstm_width % 2:
            raise ValueError(f"lstm_width must be even (two directions), got {lstm_width}")
        self.max_span_length = max_span_length
        self.kernels = kernels
        self.lstm: Optional[nn.LSTM] = None
        token_width = n_in
        if lstm_depth > 0:
            self.lstm = nn.LSTM(
                n_in,
                lstm_width // 2,
                num_layers=lstm_depth,
                bidirectional=True,
                batch_first=True,
                dropout=dropout if lstm_depth > 1 else 0.0,
            )
            token_width = lstm_width
        self.start = nn.Linear(token_width, hidden_width)
        self.end = nn.Linear(token_width, hidden_width, bias=False)
        self.inside = nn.Linear(token_width, hidden_width, bias=False)
        self.width = nn.Embedding(max_span_length, hidden_width)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        X: torch.Tensor,
        lengths: torch.Tensor,
        output_weight: Optional[torch.Tensor] = None,
        output_bias: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Encode the spans of a padded batch, or score them.

        X (torch.Tensor): Token vectors, shape (batch, max_len, n_in).
        lengths (torch.Tensor): Number of tokens per sequence, shape (batch,), on CPU.
        output_weight (Optional[torch.Tensor]): With `output_bias`, a linear
            layer (n_labels, hidden_width) applied to every span vector; see
            `score`.
        output_bias (Optional[torch.Tensor]): Its bias, shape (n_labels,).
        RETURNS (torch.Tensor): One row per span, in the order of
            `contract.span_index`: its span vector, shape (n_spans,
            hidden_width), or with an output layer its scores, shape
            (n_spans, n_labels).
        """
        if output_weight is not None and output_bias is not None:
            if not torch.is_grad_enabled():
                return self.score(X, lengths, output_weight, output_bias)
            return torch.addmm(output_bias, self.encode(X, lengths), output_weight.t())
        return self.encode(X, lengths)

    def encode(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The span vectors of a padded batch, shape (n_spans, hidden_width)."""
        start, end, inside, index = self._projections(X, lengths)
        if self.kernels:
            cells = cpu_kernels.SpanCells.apply(start, end, inside, self.width.weight, index)
        else:
            cells = span_cells(start, end, inside, self.width.weight, index)
        return self._drop(torch.relu_(cells))

    @torch.no_grad()
    def score(self, X: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The scores of a linear layer on every span vector, without autograd:
        with the kernels one width is scored at a time and the span vectors are
        never all stored (about half the time of the span layers).

        X (torch.Tensor): Token vectors, shape (batch, max_len, n_in).
        lengths (torch.Tensor): Number of tokens per sequence, shape (batch,), on CPU.
        weight (torch.Tensor): The layer's weights, shape (n_labels, hidden_width).
        bias (torch.Tensor): Its bias, shape (n_labels,).
        RETURNS (torch.Tensor): Scores, shape (n_spans, n_labels).
        """
        if not self.kernels or self.training:
            return torch.addmm(bias, self.encode(X, lengths), weight.t())
        start, end, inside, index = self._projections(X, lengths)
        return cpu_kernels.score_spans(start, end, inside, self.width.weight, index, weight, bias)

    def _projections(
        self, X: torch.Tensor, lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The start, end and inside projections of the real tokens (in order,
        padding dropped), and the index of every span's cell: `w * n + i` for
        the span of w + 1 tokens from real token i."""
        batch, max_len, _ = X.shape
        H = self._tokens(self._drop(X), lengths)
        device = X.device
        lengths = lengths.to(device)
        # index_select rather than tensor[index]: faster for large tensors on CPU.
        real = torch.arange(max_len, device=device)[None, :] < lengths[:, None]
        rows = real.reshape(-1).nonzero().squeeze(1)
        H = H.reshape(batch * max_len, -1).index_select(0, rows)
        doc, first, last = span_index(lengths, self.max_span_length)
        token = (lengths.cumsum(0) - lengths)[doc] + first
        index = (last - first) * H.shape[0] + token
        return self.start(H), self.end(H), self.inside(H), index

    def _tokens(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The token vectors the span layers see: X, or the BiLSTM over it."""
        if self.lstm is None:
            return X
        padded = self.kernels and (torch.is_grad_enabled() or len(X) <= cpu_kernels.PADDED_LSTM_MAX_BATCH)
        if padded:
            H = cpu_kernels.padded_bilstm(self.lstm, X, lengths, self.training, self._drop)
        else:
            H = self._packed_bilstm(X, lengths)
        return self._drop(H)

    def _packed_bilstm(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`self.lstm` over packed sequences. Empty sequences cannot be packed:
        they run as one padding token, whose spans are dropped."""
        lstm = cast(nn.LSTM, self.lstm)
        packed = nn.utils.rnn.pack_padded_sequence(X, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        H, _ = lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=X.shape[1])[0]

    def _drop(self, x: torch.Tensor, p: Optional[float] = None) -> torch.Tensor:
        p = self.dropout.p if p is None else p
        if self.kernels:
            return cpu_kernels.cpu_dropout(x, p, self.training)
        return nn.functional.dropout(x, p, self.training)


def span_cells(
    start: torch.Tensor, end: torch.Tensor, inside: torch.Tensor, width_weight: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """The pre-activation span vectors `start_i + end_{i+w} + mean(inside_{i..i+w})
    + width_w` of the cells `index` (`w * n + i`), by plain torch operations.

    start, end, inside (torch.Tensor): Projections of the n real tokens, (n, hidden).
    width_weight (torch.Tensor): The width embeddings, (L, hidden).
    index (torch.Tensor): The cells to return, in order.
    RETURNS (torch.Tensor): Shape (len(index), hidden).
    """
    n, L = start.shape[0], width_weight.shape[0]
    pad = start.new_zeros(L, start.shape[1])
    end_padded = torch.cat([end, pad])
    cumsum = torch.cat([pad[:1], inside.cumsum(dim=0), pad])
    cells = torch.stack(
        [
            (cumsum[w + 1 : w + 1 + n] - cumsum[:n]) / (w + 1) + start + end_padded[w : w + n] + width_weight[w]
            for w in range(L)
        ]
    )
    return cells.reshape(L * n, -1).index_select(0, index)
