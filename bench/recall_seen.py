"""Recall of a trained pipeline on a gold split, split by whether the training split has each entity's string
with its label (seen) or not (unseen).

    python bench/recall_seen.py TRAIN.jsonl TEST.jsonl MODEL

Entities are compared as (start token, end token, label); the records' `tokens` are used, as the benchmark does.
Per-label P/R/F of the same pipeline: `python -m spacy_binary_ner evaluate MODEL --gold TEST.jsonl`.
"""

import argparse
import gzip
import json
from collections import Counter

import spacy
from spacy.tokens import Doc


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf8") as f:
        return [json.loads(line) for line in f]


def entities(record):
    return {
        (s["token_start"], s["token_end"] + 1, s["label"]): record["text"][s["start"] : s["end"]]
        for s in record["spans"]
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("model")
    args = parser.parse_args()
    seen = {(string, key[2]) for record in read(args.train) for key, string in entities(record).items()}
    records = read(args.test)
    nlp = spacy.load(args.model)
    docs = (Doc(nlp.vocab, words=[t["text"] for t in r["tokens"]]) for r in records)
    counts = Counter()
    for record, doc in zip(records, nlp.pipe(docs, batch_size=256)):
        predicted = {(e.start, e.end, e.label_) for e in doc.ents}
        for key, string in entities(record).items():
            counts[(string, key[2]) in seen, key in predicted] += 1
    print("| entities | n | recall |\n|---|---|---|")
    for is_seen, name in ((True, "seen in training"), (False, "unseen")):
        n = counts[is_seen, True] + counts[is_seen, False]
        print(f"| {name} | {n} | {counts[is_seen, True] / max(n, 1):.3f} |")


if __name__ == "__main__":
    main()
