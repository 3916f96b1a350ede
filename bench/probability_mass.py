"""How a kept binary_ner pipeline's probability mass compares with its entities.

Prints, per token of the first N sentences of a gold JSONL file: the sum of the
model's probabilities over every span and label, the spans scored >= 0.5, the
gold entities, and the mass of spans scored < 0.05.

    python bench/probability_mass.py KEEP_DIR/binary_ner-0/model-best KEEP_DIR/dev.jsonl
"""

import argparse
import json

import numpy
import spacy
from spacy.tokens import Doc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pipeline")
    p.add_argument("gold", help="JSONL with tokens and spans, as ../shared/data")
    p.add_argument("--n", type=int, default=300, help="sentences to read (default 300)")
    args = p.parse_args()
    nlp = spacy.load(args.pipeline)
    pipe = nlp.get_pipe("binary_ner")
    with open(args.gold, encoding="utf8") as f:
        records = [json.loads(line) for line, _ in zip(f, range(args.n))]
    docs = [
        Doc(nlp.vocab, words=[t["text"] for t in r["tokens"]], spaces=[t.get("ws", False) for t in r["tokens"]])
        for r in records
    ]
    for name, proc in nlp.pipeline:
        if name != "binary_ner":
            docs = list(proc.pipe(docs))
    probs = 1 / (1 + numpy.exp(-numpy.asarray(pipe.model.ops.to_numpy(pipe.predict(docs)))))
    n_tokens = sum(len(doc) for doc in docs)
    n_gold = sum(len(r.get("spans", [])) for r in records)
    print(f"{len(docs)} sentences, {n_tokens} tokens; per token:")
    print(f"  sum of probabilities  {probs.sum() / n_tokens:.4f}")
    print(f"  spans scored >= 0.5   {(probs >= 0.5).sum() / n_tokens:.4f}")
    print(f"  gold entities         {n_gold / n_tokens:.4f}")
    print(f"  mass of spans < 0.05  {probs[probs < 0.05].sum() / n_tokens:.4f}")


if __name__ == "__main__":
    main()
