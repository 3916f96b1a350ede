"""The span encoder's BiLSTM on CPU: nn.LSTM over packed sequences against the
padded two-direction run (`SpanEncoder._bilstm`), in turns in one process, on
batches of real sentence lengths: a loop update (10 texts), a `spacy train`
batch (~1,000 tokens), the loop's scoring (8 texts) and inference batches (32 and 256 texts).

    OMP_NUM_THREADS=1 python bench/lstm_benchmark.py --data ../shared/data/resume_zh/train.jsonl
"""
import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spacy_binary_ner.models.pytorch.span_encoder import SpanEncoder  # noqa: E402


def packed(encoder: SpanEncoder, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    seqs = torch.nn.utils.rnn.pack_padded_sequence(X, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
    H, _ = encoder.lstm(seqs)
    return torch.nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=X.shape[1])[0]


def padded(encoder: SpanEncoder, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return encoder._bilstm(X, lengths)


def batch_of(lengths_pool: List[int], rng: random.Random, docs: int = 0, tokens: int = 0) -> List[int]:
    out: List[int] = []
    while (docs and len(out) < docs) or (tokens and sum(out) < tokens):
        out.append(rng.choice(lengths_pool))
    return out


def main(argv=None) -> Dict[str, Dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="JSONL with `text` (and `tokens`): the sentence lengths")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    lengths_pool = []
    with args.data.open(encoding="utf8") as f:
        for line in f:
            record = json.loads(line)
            lengths_pool.append(len(record.get("tokens") or record["text"]))
    encoder = SpanEncoder(96, 128, 30, lstm_width=128, lstm_depth=1, dropout=0.0)
    cases = {
        "loop update, 10 texts": (batch_of(lengths_pool, rng, docs=10), True),
        "spacy train batch, 1,000 tokens": (batch_of(lengths_pool, rng, tokens=1000), True),
        "loop predict, 8 texts": (batch_of(lengths_pool, rng, docs=8), False),
        "inference, 32 texts": (batch_of(lengths_pool, rng, docs=32), False),
        "inference, 256 texts": (batch_of(lengths_pool, rng, docs=256), False),
    }
    runs: Dict[str, Callable] = {"packed nn.LSTM": packed, "padded, two directions": padded}
    results: Dict[str, Dict[str, float]] = {}
    print(f"{args.data}: median of {args.rounds} rounds in turns, 1 torch thread\n")
    print("| batch | texts | tokens (padded) | packed nn.LSTM ms | padded ms | × packed |\n|---|---|---|---|---|---|")
    for case, (lengths, train) in cases.items():
        lengths_t = torch.tensor(lengths)
        X = torch.randn(len(lengths), max(lengths), 96)
        X *= (torch.arange(max(lengths))[None, :] < lengths_t[:, None])[:, :, None]
        times: Dict[str, List[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                begin = time.perf_counter()
                if train:
                    Xg = X.clone().requires_grad_()
                    run(encoder, Xg, lengths_t).sum().backward()
                else:
                    with torch.no_grad():
                        run(encoder, X, lengths_t)
                times[name].append(1000 * (time.perf_counter() - begin))
        ms = {name: statistics.median(v) for name, v in times.items()}
        results[case] = ms
        a, b = ms["packed nn.LSTM"], ms["padded, two directions"]
        kind = "forward + backward" if train else "forward, no grad"
        print(f"| {case} ({kind}) | {len(lengths)} | {sum(lengths)} ({len(lengths) * max(lengths)}) | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    return results


if __name__ == "__main__":
    main()
