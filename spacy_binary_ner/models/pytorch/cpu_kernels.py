"""Speed kernels of `SpanEncoder`: the same numbers as its reference code, faster on CPU.

`SpanEncoder(kernels=True)` (the default) uses them; `kernels=False` runs the
plain torch code of `span_encoder.py`, which is what these are tested equal to
(values and gradients, `tests/test_span_encoder.py`). This module imports only
torch.

- `SpanCells`: the span pre-activations with their gradient written out:
  autograd's version (a slice, a sum and a copy of the whole buffer per width)
  was most of the span layers' training time on CPU.
- `score_spans`: the spans scored by a linear layer one width at a time, so the
  (spans x hidden) span vectors are never all stored (inference only).
- `padded_bilstm`: the BiLSTM on the padded batch, each direction on its own;
  nn.LSTM on packed sequences was several times slower to backpropagate on CPU
  (a loop update 0.42x its time, a `spacy train` batch 0.69x, scoring 8 texts
  0.64x), but with many sequences of mixed lengths and no backward pass
  padding costs more than it saves (256 texts 2.3x), so large inference
  batches stay packed (`PADDED_LSTM_MAX_BATCH`).
- `cpu_dropout`: inverted dropout with a mask from 16 random bits per value:
  torch's CPU dropout (a Bernoulli draw per value) was a third of a step.
"""

from typing import Any, Optional, Tuple

import torch
from torch import nn

# At inference, a batch of at most this many sequences runs `padded_bilstm`, a
# larger one nn.LSTM on packed sequences; training always runs padded.
PADDED_LSTM_MAX_BATCH = 16


def padded_sums(end: torch.Tensor, inside: torch.Tensor, L: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """`end` with L rows of zeros after it, and the prefix sums of `inside`
    (a zero row first, L zero rows after): every width's slices then exist."""
    pad = end.new_zeros(L, end.shape[1])
    return torch.cat([end, pad]), torch.cat([pad[:1], inside.cumsum(dim=0), pad])


def write_cells(
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
    n, L = start.shape[0], width_weight.shape[0]
    end_padded, cumsum = padded_sums(end, inside, L)
    cells = start.new_empty(L, n, start.shape[1])
    for w in range(L):
        write_cells(cells[w], cumsum, start, end_padded, width_weight[w], w, n)
    return cells.reshape(L * n, -1).index_select(0, index)


class SpanCells(torch.autograd.Function):
    """`span_encoder.span_cells` with its gradient written out."""

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


def score_spans(
    start: torch.Tensor,
    end: torch.Tensor,
    inside: torch.Tensor,
    width_weight: torch.Tensor,
    index: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """`relu(span_cells(...)) @ weight.T + bias`, width by width: only the
    (cells x labels) scores are kept. Without autograd."""
    n, L = start.shape[0], width_weight.shape[0]
    end_padded, cumsum = padded_sums(end, inside, L)
    scores = start.new_empty(L, n, weight.shape[0])
    cell = torch.empty_like(start)
    weight_t = weight.t()
    for w in range(L):
        write_cells(cell, cumsum, start, end_padded, width_weight[w], w, n)
        torch.addmm(bias, torch.relu_(cell), weight_t, out=scores[w])
    return scores.reshape(L * n, -1).index_select(0, index)


def padded_bilstm(lstm: nn.LSTM, X: torch.Tensor, lengths: torch.Tensor, training: bool, drop: Any) -> torch.Tensor:
    """`lstm` (bidirectional, batch first) over a right-padded batch without
    packed sequences: the backward direction runs on every sequence reversed in
    place (padding stays at the end), so padding never reaches a real token's
    state. `drop(H, p)` is applied between layers in training."""
    batch, max_len, _ = X.shape
    positions = torch.arange(max_len, device=X.device)[None, :]
    lengths = lengths.to(X.device)[:, None]
    reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)[:, :, None]

    def flip(T: torch.Tensor) -> torch.Tensor:  # each sequence reversed, padding in place
        return T.gather(1, reverse.expand(-1, -1, T.shape[2]))

    zeros = X.new_zeros(1, batch, lstm.hidden_size)
    H = X
    for layer in range(lstm.num_layers):
        if layer and training and lstm.dropout:
            H = drop(H, lstm.dropout)
        directions = []
        for suffix, inputs in (("", H), ("_reverse", flip(H))):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            weights = [getattr(lstm, f"{name}_l{layer}{suffix}") for name in names]
            directions.append(torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, training, False, True)[0])
        H = torch.cat([directions[0], flip(directions[1])], dim=2)
    return H


def drop_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """True where a value is dropped, with probability `p` to 1/65536: four
    uniform 16-bit draws from each random 64-bit integer."""
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), None)
    return bits.view(torch.int16)[:n].view(x.shape) < round(32768 - (1.0 - p) * 65536)


class CpuDropout(torch.autograd.Function):
    """Inverted dropout with the mask of `drop_mask`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        drop = drop_mask(x, p)
        ctx.save_for_backward(drop)
        ctx.scale = 1.0 / (1.0 - p)
        return x.masked_fill(drop, 0.0).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> Tuple[Optional[torch.Tensor], None]:  # type: ignore[override]
        (drop,) = ctx.saved_tensors
        return dy.masked_fill(drop, 0.0).mul_(ctx.scale), None


def cpu_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout as `nn.functional.dropout`; on CPU in training with `CpuDropout`."""
    if not training or p <= 0.0 or p >= 1.0 or x.device.type != "cpu" or not x.is_floating_point():
        return nn.functional.dropout(x, p, training)
    return CpuDropout.apply(x, p)
