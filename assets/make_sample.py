#!/usr/bin/env python3
"""Write the embedded sample: English teach answers and a gold evaluation set.

Sentences are built from templates and word lists written for this project,
so the sample is ours to ship. Deterministic: rerunning gives the same files.

    python assets/make_sample.py
"""
import json
import random
from pathlib import Path

PERSON = ["Anna Berg", "Tomas Lindqvist", "Maria Santos", "John Okafor", "Li Wei", "Sara Nilsson",
          "Peter Haas", "Fatima Khan", "David Cohen", "Elena Petrova", "Omar Said", "Julia Novak"]
LOC = ["Berlin", "Lisbon", "Nairobi", "Oslo", "Toronto", "Osaka", "Lyon", "Krakow", "Quito", "Perth",
       "Malmo", "Porto"]
ORG = ["Northwind Bank", "Acme Corp", "Bluefin Labs", "Orbit Airlines", "Greenfield University",
       "Harbor Health", "Vela Systems", "Summit Energy"]
TEMPLATES = [
    "{PERSON} moved to {LOC} last year .",
    "{PERSON} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "Yesterday {PERSON} met {PERSON} at the station .",
    "The report from {ORG} was published on Monday .",
    "{PERSON} said the weather in {LOC} was cold .",
    "Shares of {ORG} rose after the news .",
    "We flew from {LOC} to {LOC} in May .",
    "Nothing much happened this week .",
    "{PERSON} joined {ORG} as an engineer .",
]


def fill(rng, template):
    words, spans = [], []
    for part in template.split():
        if part.startswith("{") and part.endswith("}"):
            label = part[1:-1]
            value = rng.choice({"PERSON": PERSON, "LOC": LOC, "ORG": ORG}[label]).split()
            spans.append((len(words), len(words) + len(value), label))
            words.extend(value)
        else:
            words.append(part)
    tokens, pos = [], 0
    for i, w in enumerate(words):
        tokens.append({"text": w, "start": pos, "end": pos + len(w), "id": i})
        pos += len(w) + 1
    text = " ".join(words)
    gold = [{"start": tokens[s]["start"], "end": tokens[e - 1]["end"], "token_start": s,
             "token_end": e - 1, "label": l} for s, e, l in spans]
    return {"text": text, "tokens": tokens, "spans": gold}


def teach(rng, record):
    """One or two questions about the sentence, answered as a careful person would."""
    out = []
    for _ in range(rng.choice([1, 1, 2])):
        if record["spans"] and rng.random() < 0.6:
            span = dict(rng.choice(record["spans"]))
            if rng.random() < 0.35:
                span["label"] = rng.choice([l for l in ("PERSON", "LOC", "ORG") if l != span["label"]])
        else:
            i = rng.randrange(len(record["tokens"]))
            t = record["tokens"][i]
            span = {"start": t["start"], "end": t["end"], "token_start": i, "token_end": i,
                    "label": rng.choice(["PERSON", "LOC", "ORG"])}
        gold = {(s["start"], s["end"], s["label"]) for s in record["spans"]}
        answer = "accept" if (span["start"], span["end"], span["label"]) in gold else "reject"
        out.append({**{k: record[k] for k in ("text", "tokens")}, "spans": [span], "answer": answer})
    return out


def main():
    rng = random.Random(0)
    here = Path(__file__).resolve().parent
    train = [fill(rng, rng.choice(TEMPLATES)) for _ in range(400)]
    gold = [fill(rng, rng.choice(TEMPLATES)) for _ in range(100)]
    with open(here / "en_teach.jsonl", "w", encoding="utf8") as f:
        for record in train:
            for task in teach(rng, record):
                f.write(json.dumps(task, ensure_ascii=False) + "\n")
    with open(here / "en_gold_eval.jsonl", "w", encoding="utf8") as f:
        for record in gold:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
