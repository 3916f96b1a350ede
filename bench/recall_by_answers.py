"""Recall of a trained pipeline on a gold split, by what teach answers said of each entity's string.

    python bench/recall_by_answers.py DECISIONS.jsonl TEST.jsonl MODEL [MODEL ...] [--limit 3000]

Each gold entity falls in one row: its string never accepted with its label, accepted with several labels,
accepted and rejected with its label somewhere, or accepted and propagated by `propagate_accepts`' default
filters (left out as rarely accepted or as mostly inside longer accepts). The filters are approximated on
strings: occurrences are counted as substrings of the answered texts, not as token matches. For each model the
table gives the share of the row's entities it finds exactly, with the same boundaries but another label, with
an overlapping prediction, or with nothing there.
"""

import argparse
import json
from collections import Counter, defaultdict

import spacy
from spacy.tokens import Doc

OUTCOMES = ("found", "wrong label", "overlap", "nothing")


def read_answers(path):
    accepted, rejected, texts = defaultdict(Counter), defaultdict(Counter), {}
    with open(path, encoding="utf8") as f:
        for line in f:
            rec = json.loads(line)
            texts[rec["_input_hash"]] = rec["text"]
            for span in rec["spans"]:
                string = rec["text"][span["start"] : span["end"]]
                if rec["answer"] == "accept":
                    accepted[string][span["label"]] += 1
                elif rec["answer"] == "reject":
                    rejected[string][span["label"]] += 1
    return accepted, rejected, "\n".join(texts.values())


def categorizer(accepted, rejected, answered_text, min_rate=0.03, max_nested=0.3):
    nested = Counter()
    for string, labels in accepted.items():
        n = sum(labels.values())
        for i in range(len(string)):
            for j in range(i + 1, len(string) + 1):
                if j - i < len(string) and string[i:j] in accepted:
                    nested[string[i:j]] += n

    def category(string, label):
        if label not in accepted.get(string, ()):
            return "never accepted with this label"
        if len(accepted[string]) > 1:
            return "accepted with several labels"
        if rejected.get(string, Counter())[label]:
            return "accepted, also rejected with it"
        n = sum(accepted[string].values())
        if n < min_rate * answered_text.count(string):
            return "accepted, rarely"
        if nested[string] > max_nested * (n + nested[string]):
            return "accepted, mostly inside longer"
        return "accepted and propagated"

    return category


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("decisions")
    parser.add_argument("gold")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--limit", type=int, default=3000, help="first N gold records (0: all)")
    args = parser.parse_args()
    category = categorizer(*read_answers(args.decisions))
    with open(args.gold, encoding="utf8") as f:
        records = [json.loads(line) for line in f]
    if args.limit:
        records = records[: args.limit]
    print("| model | entity string in the answers | entities | " + " | ".join(OUTCOMES) + " |")
    print("|---|---|---|" + "---|" * len(OUTCOMES))
    for path in args.models:
        nlp = spacy.load(path)
        stats = defaultdict(Counter)
        for rec in records:
            doc = nlp(Doc(nlp.vocab, words=[t["text"] for t in rec["tokens"]]))
            starts, ends = [t["start"] for t in rec["tokens"]], [t["end"] for t in rec["tokens"]]
            pred = [(starts[e.start], ends[e.end - 1], e.label_) for e in doc.ents]
            for span in rec["spans"]:
                key = (span["start"], span["end"], span["label"])
                if key in pred:
                    outcome = "found"
                elif any(p[:2] == key[:2] for p in pred):
                    outcome = "wrong label"
                elif any(p[0] < key[1] and key[0] < p[1] for p in pred):
                    outcome = "overlap"
                else:
                    outcome = "nothing"
                stats[category(rec["text"][span["start"] : span["end"]], span["label"])][outcome] += 1
        for name, counts in sorted(stats.items()):
            total = sum(counts.values())
            shares = " | ".join(f"{counts[o] / total:.2f}" for o in OUTCOMES)
            print(f"| {path} | {name} | {total} | {shares} |")


if __name__ == "__main__":
    main()
