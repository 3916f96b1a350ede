"""Training step of the span encoder (forward and backward, BiLSTM included):
this release's written-out cells gradient and 16-bit dropout draws against
autograd's cells and torch's dropout, in turns in one process.

    OMP_NUM_THREADS=1 python bench/encoder_benchmark.py --docs 20 --rounds 15
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import spacy_binary_ner.models.pytorch.span_encoder as E  # noqa: E402


def _autograd_cells(start, end, inside, width_weight, index):
    """The cells as plain tensor ops, differentiated by autograd (what the
    encoder did before)."""
    n, L = start.shape[0], width_weight.shape[0]
    end_padded, cumsum = E._padded_sums(end, inside, L)
    cells = torch.stack(
        [(cumsum[w + 1 : w + 1 + n] - cumsum[:n]) * (1.0 / (w + 1)) + start + end_padded[w : w + n] + width_weight[w]
         for w in range(L)]
    )
    return cells.reshape(L * n, -1).index_select(0, index)


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=20, help="docs per step (a loop update with replay: ~20)")
    p.add_argument("--max-span-length", type=int, default=30)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lengths = torch.randint(15, 60, (args.docs,))
    X = torch.randn(args.docs, int(lengths.max()), 96, requires_grad=True)
    encoder = E.SpanEncoder(96, 128, args.max_span_length, lstm_width=128, lstm_depth=1, dropout=0.1)
    encoder.train()
    weight = torch.randn(8, 128)
    current_apply, current_drop = E._SpanCells.apply, E.SpanEncoder._drop
    times: Dict[str, List[float]] = {"previous": [], "current": []}
    try:
        for _ in range(args.rounds):
            for name in times:
                previous = name == "previous"
                E._SpanCells.apply = staticmethod(_autograd_cells) if previous else current_apply
                E.SpanEncoder._drop = (lambda self, x: self.dropout(x)) if previous else current_drop
                begin = time.perf_counter()
                (encoder(X, lengths) @ weight.t()).sum().backward()
                times[name].append(time.perf_counter() - begin)
    finally:
        E._SpanCells.apply, E.SpanEncoder._drop = current_apply, current_drop
    ms = {name: 1000 * statistics.median(v) for name, v in times.items()}
    print(f"{args.docs} docs, {int(lengths.sum())} tokens, spans up to {args.max_span_length}, "
          f"median of {args.rounds} rounds in turns\n")
    print("| span layers | training step ms | × previous |\n|---|---|---|")
    for name in ("previous", "current"):
        print(f"| {name} | {ms[name]:.1f} | {ms[name] / ms['previous']:.2f} |")
    return ms


if __name__ == "__main__":
    main()
