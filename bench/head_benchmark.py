"""Inference time of binary_ner's span head, the fused path against the plain
chain, in turns in one process (the tok2vec timed alone, subtracted).

`SpanScorer.v1` scores spans inside its span encoder at inference, one width at
a time with the output layer's weights; its training path is the plain chain
tok2vec >> span encoder >> output layer, which this script also times at
inference (what inference did before).

    OMP_NUM_THREADS=1 python bench/head_benchmark.py --model training/model-best \
        --data ../shared/data/resume_zh/train.jsonl --docs 256 --rounds 15
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import spacy
import torch
from spacy.tokens import Doc
from thinc.layers.chain import forward as chain_forward


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a pipeline with a binary_ner component")
    p.add_argument("--data", type=Path, required=True, help="JSONL with text (and tokens)")
    p.add_argument("--docs", type=int, default=256, help="docs per call (spaCy's default batch: 256)")
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    nlp = spacy.load(args.model)
    model = nlp.get_pipe("binary_ner").model
    docs: List[Doc] = []
    with args.data.open(encoding="utf8") as f:
        for line in f:
            record = json.loads(line)
            if "tokens" in record:
                docs.append(Doc(nlp.vocab, words=[t["text"] for t in record["tokens"]]))
            else:
                docs.append(nlp.make_doc(record["text"]))
            if len(docs) == args.docs:
                break
    tok2vec = model.get_ref("tok2vec")
    calls = {
        "tok2vec": lambda: tok2vec.predict(docs),
        "fused": lambda: model.predict(docs),
        "chain": lambda: chain_forward(model, docs, False)[0],
    }
    times: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            begin = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - begin)
    ms = {name: 1000 * statistics.median(v) for name, v in times.items()}
    head = {"fused": ms["fused"] - ms["tok2vec"], "chain": ms["chain"] - ms["tok2vec"]}
    n_tokens = sum(len(d) for d in docs)
    print(f"{len(docs)} docs, {n_tokens} tokens, median of {args.rounds} rounds in turns\n")
    print("| inference path | whole model ms | head ms (minus tok2vec) | head × chain |")
    print("|---|---|---|---|")
    print(f"| tok2vec alone | {ms['tok2vec']:.0f} | | |")
    for name in ("chain", "fused"):
        print(f"| {name} | {ms[name]:.0f} | {head[name]:.0f} | {head[name] / head['chain']:.2f} |")
    return {**ms, "head_fused": head["fused"], "head_chain": head["chain"]}


if __name__ == "__main__":
    main()
    sys.exit(0)
