"""PyTorch module that turns token vectors into one vector per candidate span.

This module imports only torch: the Thinc wiring lives in
``spacy_binary_ner.models.span_scorer``.
"""
from typing import Optional

import torch
from torch import nn


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
    """

    def __init__(
        self,
        n_in: int,
        hidden_width: int,
        max_span_length: int,
        lstm_width: int = 128,
        lstm_depth: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if max_span_length < 1:
            raise ValueError(f"max_span_length must be at least 1, got {max_span_length}")
        if lstm_depth and lstm_width % 2:
            raise ValueError(f"lstm_width must be even (two directions), got {lstm_width}")
        self.max_span_length = max_span_length
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
            layer (n_labels, hidden_width) applied to every span vector: the
            span vectors are then never all stored, one width at a time is
            scored (without autograd: about half the time of the span layers).
        output_bias (Optional[torch.Tensor]): Its bias, shape (n_labels,).
        RETURNS (torch.Tensor): One row per span that fits in its sequence,
            ordered by sequence, then start token, then width: the spans
            (i, i + w), w < max_span_length, i + w < length. Its span vector,
            shape (n_spans, hidden_width), or with an output layer its scores,
            shape (n_spans, n_labels).
        """
        batch, max_len, _ = X.shape
        H = self.dropout(X)
        if self.lstm is not None:
            # Empty sequences cannot be packed: run them as one padding token,
            # whose spans are dropped below.
            packed = nn.utils.rnn.pack_padded_sequence(
                H, lengths.clamp(min=1), batch_first=True, enforce_sorted=False
            )
            H, _ = self.lstm(packed)
            H, _ = nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=max_len)
            H = self.dropout(H)
        L = self.max_span_length
        device = X.device
        lengths = lengths.to(device)
        # index_select rather than tensor[index]: faster for large tensors on CPU.
        real = torch.arange(max_len, device=device)[None, :] < lengths[:, None]
        rows = real.reshape(-1).nonzero().squeeze(1)
        H = H.reshape(batch * max_len, -1).index_select(0, rows)  # the real tokens, in order
        n_tokens = H.shape[0]
        doc_last = torch.repeat_interleave(lengths.cumsum(0) - 1, lengths)
        positions = torch.arange(n_tokens, device=device)
        offsets = torch.arange(L, device=device)
        valid = (positions[:, None] + offsets[None, :]) <= doc_last[:, None]
        # Every (start, width) cell is computed from contiguous slices, width by
        # width, into a width-major buffer, and only then are the spans that fit
        # in their doc gathered, in (start, width) order: one gather instead of
        # one per term (gathers dominated the forward pass on CPU). Rows past the
        # end are padding; cells that use them are never gathered.
        pad = H.new_zeros(L, self.end.out_features)
        start = self.start(H)
        end = torch.cat([self.end(H), pad])
        cumsum = torch.cat([pad[:1], self.inside(H).cumsum(dim=0), pad])
        first, width = valid.nonzero(as_tuple=True)
        score = output_weight is not None and output_bias is not None
        if score and not torch.is_grad_enabled():
            # The same sums as below, written in place into one width's
            # buffer, then scored: only (cells x labels) is kept.
            scores = start.new_empty(L, n_tokens, output_weight.shape[0])
            cell = start.new_empty(n_tokens, start.shape[-1])
            weight_t = output_weight.t()
            for w in range(L):
                self._cell(cell, cumsum, start, end, w, n_tokens)
                torch.addmm(output_bias, self.dropout(torch.relu_(cell)), weight_t, out=scores[w])
            return scores.reshape(L * n_tokens, -1).index_select(0, width * n_tokens + first)
        if torch.is_grad_enabled():
            cells = torch.stack(
                [
                    (cumsum[w + 1 : w + 1 + n_tokens] - cumsum[:n_tokens]) * (1.0 / (w + 1))
                    + start
                    + end[w : w + n_tokens]
                    + self.width.weight[w]
                    for w in range(L)
                ]
            )
        else:
            # The same sums, written in place: about a quarter faster at inference.
            cells = start.new_empty(L, n_tokens, start.shape[-1])
            for w in range(L):
                self._cell(cells[w], cumsum, start, end, w, n_tokens)
        Z = self.dropout(torch.relu_(cells.reshape(L * n_tokens, -1).index_select(0, width * n_tokens + first)))
        if score:
            return torch.addmm(output_bias, Z, output_weight.t())
        return Z

    def _cell(
        self, out: torch.Tensor, cumsum: torch.Tensor, start: torch.Tensor, end: torch.Tensor, w: int, n: int
    ) -> None:
        """Write the pre-activation vectors of the spans of width `w + 1` at
        every start into `out`, in place (no autograd)."""
        torch.sub(cumsum[w + 1 : w + 1 + n], cumsum[:n], out=out)
        out.mul_(1.0 / (w + 1))
        out.add_(start)
        out.add_(end[w : w + n])
        out.add_(self.width.weight[w])
