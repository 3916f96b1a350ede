"""PyTorch module that turns token vectors into one vector per candidate span.

This module imports only torch: the Thinc wiring lives in
``spacy_binary_ner.models.span_scorer``.
"""
from typing import Any, Optional, Tuple, cast

import torch
from torch import nn


# At inference, a batch of at most this many sequences runs the padded BiLSTM
# (`SpanEncoder._bilstm`), a larger one nn.LSTM on packed sequences; training
# always runs padded.
PADDED_LSTM_MAX_BATCH = 16


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
        H = self._drop(X)
        if self.lstm is not None:
            if torch.is_grad_enabled() or batch <= PADDED_LSTM_MAX_BATCH:
                H = self._bilstm(H, lengths)
            else:
                H = self._packed_bilstm(H, lengths, max_len)
            H = self._drop(H)
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
        # one per term (gathers dominated the forward pass on CPU). Cells that
        # run past their doc are never gathered.
        first, width = valid.nonzero(as_tuple=True)
        index = width * n_tokens + first
        start, end, inside = self.start(H), self.end(H), self.inside(H)
        score = output_weight is not None and output_bias is not None
        if score and not torch.is_grad_enabled():
            # Scored width by width: only (cells x labels) is kept.
            end_padded, cumsum = _padded_sums(end, inside, L)
            scores = start.new_empty(L, n_tokens, output_weight.shape[0])
            cell = torch.empty_like(start)
            weight_t = output_weight.t()
            for w in range(L):
                _write_cells(cell, cumsum, start, end_padded, self.width.weight[w], w, n_tokens)
                torch.addmm(output_bias, self._drop(torch.relu_(cell)), weight_t, out=scores[w])
            return scores.reshape(L * n_tokens, -1).index_select(0, index)
        # Without autograd this is `_span_cells` itself.
        cells = _SpanCells.apply(start, end, inside, self.width.weight, index)
        Z = self._drop(torch.relu_(cells))
        if score:
            return torch.addmm(output_bias, Z, output_weight.t())
        return Z

    def _packed_bilstm(self, X: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        """`self.lstm` over packed sequences. Empty sequences cannot be packed:
        they run as one padding token, whose spans are dropped."""
        lstm = cast(nn.LSTM, self.lstm)
        packed = nn.utils.rnn.pack_padded_sequence(X, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        H, _ = lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=max_len)[0]

    def _bilstm(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over a right-padded batch, without packed sequences: each
        direction runs on the padded tensor, the backward one on every sequence
        reversed in place (padding stays at the end), so padding never reaches
        a real token's state. Same result as `_packed_bilstm`, whose backward
        pass on CPU was several times slower: forward and backward of a loop
        update (10 resume_zh texts) 0.42x its time, a `spacy train` batch of
        1,000 tokens 0.69x, scoring 8 texts 0.64x; but with many sequences of
        mixed lengths and no backward pass, padding costs more than it saves
        (256 texts 2.3x), so inference of large batches stays packed
        (bench/lstm_benchmark.py)."""
        lstm = cast(nn.LSTM, self.lstm)
        batch, max_len, _ = X.shape
        positions = torch.arange(max_len, device=X.device)[None, :]
        lengths = lengths.to(X.device)[:, None]
        reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)[:, :, None]

        def flip(T: torch.Tensor) -> torch.Tensor:  # each sequence reversed, padding in place
            return T.gather(1, reverse.expand(-1, -1, T.shape[2]))

        zeros = X.new_zeros(1, batch, lstm.hidden_size)
        H = X
        for layer in range(lstm.num_layers):
            if layer and self.training and lstm.dropout:
                H = self._drop(H, lstm.dropout)
            directions = []
            for suffix, inputs in (("", H), ("_reverse", flip(H))):
                weights = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                directions.append(torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)[0])
            H = torch.cat([directions[0], flip(directions[1])], dim=2)
        return H

    def _drop(self, x: torch.Tensor, p: Optional[float] = None) -> torch.Tensor:
        """Dropout; on CPU with a mask from 16 random bits per value: torch's
        own CPU dropout was a third of a training step (per-value Bernoulli
        draws on every span vector)."""
        p = self.dropout.p if p is None else p
        if not self.training or p <= 0.0 or p >= 1.0 or x.device.type != "cpu" or not x.is_floating_point():
            return nn.functional.dropout(x, p, self.training)
        return _CpuDropout.apply(x, p)


def _drop_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """True where a value is dropped, with probability `p` to 1/65536: four
    uniform 16-bit draws from each random 64-bit integer."""
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    return bits.view(torch.int16)[:n].view(x.shape) < round(32768 - (1.0 - p) * 65536)


class _CpuDropout(torch.autograd.Function):
    """Inverted dropout with the mask of `_drop_mask`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        drop = _drop_mask(x, p)
        ctx.save_for_backward(drop)
        ctx.scale = 1.0 / (1.0 - p)
        return x.masked_fill(drop, 0.0).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Tuple[Optional[torch.Tensor], None]:  # type: ignore[override]
        (drop,) = ctx.saved_tensors
        return dy.masked_fill(drop, 0.0).mul_(ctx.scale), None


def _padded_sums(end: torch.Tensor, inside: torch.Tensor, L: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """`end` with L rows of zeros after it, and the prefix sums of `inside`
    (a zero row first, L zero rows after): every width's slices then exist."""
    pad = end.new_zeros(L, end.shape[1])
    return torch.cat([end, pad]), torch.cat([pad[:1], inside.cumsum(dim=0), pad])


def _write_cells(
    out: torch.Tensor,
    cumsum: torch.Tensor,
    start: torch.Tensor,
    end_padded: torch.Tensor,
    width_vector: torch.Tensor,
    w: int,
    n: int,
) -> None:
    """Write the pre-activation vectors of the spans of `w + 1` tokens at every
    start into `out`, in place: mean of `inside` + start + end + width."""
    torch.sub(cumsum[w + 1 : w + 1 + n], cumsum[:n], out=out)
    out.mul_(1.0 / (w + 1))
    out.add_(start)
    out.add_(end_padded[w : w + n])
    out.add_(width_vector)


def _span_cells(
    start: torch.Tensor, end: torch.Tensor, inside: torch.Tensor, width_weight: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """The pre-activation vectors of the cells `index` (w * n + i: the span of
    w + 1 tokens from token i), without autograd."""
    n, L = start.shape[0], width_weight.shape[0]
    end_padded, cumsum = _padded_sums(end, inside, L)
    cells = start.new_empty(L, n, start.shape[1])
    for w in range(L):
        _write_cells(cells[w], cumsum, start, end_padded, width_weight[w], w, n)
    return cells.reshape(L * n, -1).index_select(0, index)


class _SpanCells(torch.autograd.Function):
    """`_span_cells` with its gradient written out: autograd's version (a slice,
    a sum and a copy of the whole buffer per width) was most of the span
    layers' training time on CPU."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        start: torch.Tensor,
        end: torch.Tensor,
        inside: torch.Tensor,
        width_weight: torch.Tensor,
        index: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.n_cells = (width_weight.shape[0], start.shape[0])
        return _span_cells(start, end, inside, width_weight, index)

    @staticmethod
    def backward(ctx: Any, d_cells: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        L, n = ctx.n_cells
        hidden = d_cells.shape[1]
        grid = d_cells.new_zeros(L * n, hidden).index_copy_(0, index, d_cells.contiguous()).view(L, n, hidden)
        d_start = grid.sum(dim=0)
        d_width = grid.sum(dim=1)
        d_end = d_cells.new_zeros(n + L, hidden)
        d_cumsum = d_cells.new_zeros(n + 1 + L, hidden)
        for w in range(L):
            g = grid[w]
            d_end[w : w + n] += g
            d_cumsum[w + 1 : w + 1 + n].add_(g, alpha=1.0 / (w + 1))
            d_cumsum[:n].sub_(g, alpha=1.0 / (w + 1))
        # cumsum[m] sums inside[:m], so inside[k] reaches every m > k.
        d_inside = d_cumsum[1 : n + 1].flip(0).cumsum(dim=0).flip(0)
        return d_start, d_end[:n], d_inside, d_width, None
