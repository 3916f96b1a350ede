#!/usr/bin/env python3
"""Benchmark: binary_rel against the "missing = no relation" baseline,
trained on the same simulated relation answers, with the gold entities given
(the relation step's micro-F1).

The answers (teach-1x, `simulate_teach_1x`, used by every system): one
question per training text that has two gold entities with an allowed label
pair, in the file's order, from `random.Random(seed)`. With probability 0.5
the pair is a gold related pair (where the text has one), else an ordered
pair of its gold entities with no gold relation whose entity labels allow a
relation label; its label is, with probability 0.5, the pair's gold label
(where it has one), else uniformly one of the labels its entity labels
allow. It is answered accept if the gold annotation holds that relation,
else reject. The record carries every gold entity of the text in `spans` (the
entities are given) and the one relation asked.

Systems (the same architecture, tok2vec, optimizer, batch size, step budget
and seed; allowed entity label pairs from the gold training relations;
`exclusive_labels` on and `max_distance` 80 unless told otherwise):
  binary_rel            ours, teach-1x: unanswered (pair, label) cells unknown (`unknown_weight`)
  missing_negative      the same pipe with `unknown_weight = 1`: every unanswered cell of the
                        candidate pairs is "no relation", as spaCy's relation tutorial reads data
  gold                  the complete gold annotation (with every cell known, the two pipes are the
                        same training, so one run stands for both)

Score: micro-F1 of (head, child, label) on the test split, the entities given
as gold; the decision threshold is chosen per system on the dev split, and
the weights of the evaluation with the best dev F1 are kept. With
`--ner-steps N`, also end to end: binary_ner trained N steps on the gold
entities of the training split gives the test entities, and a relation is
right if both its entities have a gold relation's offsets and its label.
Writes <out> (JSON; other datasets already in it are kept) and prints a
Markdown table.

    python bench/rel_benchmark.py --data ../shared/data/conll04_en --steps 2000 --eval-every 250 --ner-steps 750
    python bench/rel_benchmark.py --data ../shared/data/sanwen_zh --steps 1500 --eval-every 250
"""

import argparse
import copy
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spacy
import torch
from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch
from thinc.api import Adam

from spacy_binary_ner.pipeline import DEFAULT_MODEL
from spacy_binary_ner.records import iter_jsonl
from spacy_binary_ner.rel.pipe import predicted_relations
from spacy_binary_ner.rel.reader import RelReader, give_entities
from spacy_binary_ner.rel.targets import answered_label_pairs

REPO = Path(__file__).resolve().parent.parent
SYSTEMS = {"binary_rel": ("teach", None), "missing_negative": ("teach", 1.0), "gold": ("gold", None)}
THRESHOLDS = [0.01, 0.02, 0.03, 0.04] + [round(0.05 * k, 2) for k in range(1, 20)]
GOLD_KEY = "gold_entities"


def simulate_teach_1x(records: Sequence[dict], label_pairs: Dict[str, List[List[str]]], seed: int = 0) -> List[dict]:
    """One simulated relation answer per record that allows a question (the
    module's definition of teach-1x).

    records (Sequence[dict]): Gold records: `spans`, `relations` with `head`
        and `child` as span indices.
    label_pairs (Dict[str, List[List[str]]]): Allowed entity label pairs per relation label.
    seed (int): The seed of the one random generator used.
    RETURNS (List[dict]): Teach records, in order.
    """
    rng = random.Random(seed)
    allowed: Dict[Tuple[str, str], List[str]] = {}
    for label in sorted(label_pairs):
        for head, child in label_pairs[label]:
            allowed.setdefault((head, child), []).append(label)
    answers = []
    for record in records:
        spans = record.get("spans", [])
        gold = {(r["head"], r["child"], r["label"]) for r in record.get("relations", [])}
        related = sorted({(h, c) for h, c, _ in gold})
        unrelated = [
            (h, c)
            for h in range(len(spans))
            for c in range(len(spans))
            if h != c and (h, c) not in related and (spans[h]["label"], spans[c]["label"]) in allowed
        ]
        if not related and not unrelated:
            continue
        if related and (not unrelated or rng.random() < 0.5):
            head, child = rng.choice(related)
        else:
            head, child = rng.choice(unrelated)
        gold_labels = sorted(label for h, c, label in gold if (h, c) == (head, child))
        if gold_labels and rng.random() < 0.5:
            label = rng.choice(gold_labels)
        else:
            label = rng.choice(allowed.get((spans[head]["label"], spans[child]["label"]), gold_labels))
        answers.append(
            {
                "text": record["text"],
                "tokens": record.get("tokens"),
                "spans": spans,
                "relations": [{"head": head, "child": child, "label": label}],
                "answer": "accept" if (head, child, label) in gold else "reject",
            }
        )
    return answers


def read(nlp: Language, records: Sequence[dict], complete: bool) -> List[Example]:
    """Records as examples, the gold entities also on the predicted docs."""
    reader = RelReader(nlp)
    reader.read_records(records, complete=complete)
    examples = reader.examples()
    give_entities(examples, GOLD_KEY)
    return examples


def score(nlp: Language, examples: Sequence[Example], thresholds: Sequence[float]) -> Dict[float, Dict[str, float]]:
    """Micro P/R/F1 of the relations predicted on the examples' docs (gold
    entities given), at each threshold."""
    docs = list(nlp.get_pipe("binary_rel").pipe(eg.predicted.copy() for eg in examples))
    gold = set()
    for i, eg in enumerate(examples):
        ref = eg.reference
        for a in ref.user_data["binary_rel_answers"]:
            if a[5] == 1.0:
                gold.add((i, *a[:5]))
    out = {}
    for t in thresholds:
        found = {
            (i, h.start, h.end, c.start, c.end, label)
            for i, doc in enumerate(docs)
            for h, c, label, _ in predicted_relations(doc, t)
        }
        tp = len(found & gold)
        p = tp / len(found) if found else 0.0
        r = tp / len(gold) if gold else 0.0
        out[t] = {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}
    return out


def train_ner(
    lang: str, train: List[dict], dev: List[dict], test: List[dict], args: argparse.Namespace
) -> List[Example]:
    """Train binary_ner on the gold entities of the training split (the
    model of the relation configs, best dev F1 kept) and return the test
    examples with its predicted entities on their predicted docs."""
    fix_random_seed(args.seed)
    nlp = spacy.blank(lang)
    model = copy.deepcopy(DEFAULT_MODEL)
    model["max_span_length"] = args.ner_max_span_length
    ner = nlp.add_pipe("binary_ner", config={"model": model})
    train_egs, dev_egs, test_egs = read(nlp, train, True), read(nlp, dev, True), read(nlp, test, True)
    optimizer = Adam(0.001, L2=0.01, grad_clip=1.0, use_averages=True)
    nlp.initialize(lambda: train_egs, sgd=optimizer)
    rng = random.Random(args.seed)
    best: Tuple[float, bytes] = (-1.0, b"")
    started = time.time()
    for step, batch in enumerate(_batches(train_egs, args, rng), 1):
        ner.update(batch, sgd=optimizer, drop=0.1)
        if step % args.eval_every == 0 or step == args.ner_steps:
            with ner.model.use_params(optimizer.averages):
                f = nlp.evaluate(dev_egs)["ents_f"]
                if f > best[0]:
                    best = (f, ner.model.to_bytes())
            print(f"  ner step {step} dev ents F1 {f:.3f} {time.time() - started:.0f}s", flush=True)
        if step >= args.ner_steps:
            break
    ner.model.from_bytes(best[1])
    for eg, doc in zip(test_egs, nlp.pipe(eg.predicted.copy() for eg in test_egs)):
        eg.predicted.spans[GOLD_KEY] = [Span(eg.predicted, e.start, e.end, e.label_) for e in doc.ents]
    test_f = nlp.evaluate(read(nlp, test, True))["ents_f"]
    print(f"  ner: dev ents F1 {best[0]:.3f}, test {test_f:.3f}", flush=True)
    return test_egs, {"dev_ents_f": round(best[0], 4), "test_ents_f": round(test_f, 4), "steps": args.ner_steps}


def _batches(examples: List[Example], args: argparse.Namespace, rng: random.Random):
    while True:
        order = list(examples)
        rng.shuffle(order)
        yield from minibatch(order, args.batch_size)


def train_system(
    lang: str,
    train: List[dict],
    complete: bool,
    dev: List[dict],
    test: List[dict],
    label_pairs: Dict[str, List[List[str]]],
    unknown_weight: Optional[float],
    args: argparse.Namespace,
    predicted_test: Optional[List[Example]] = None,
) -> Dict[str, object]:
    """Train one system and score it on dev (threshold chosen there) and test."""
    fix_random_seed(args.seed)
    nlp = spacy.blank(lang)
    settings = {
        "spans_key": GOLD_KEY,
        "label_pairs": label_pairs,
        "max_distance": args.max_distance,
        "exclusive_labels": args.exclusive_labels,
        "unknown_mask_above": args.unknown_mask_above,
    }
    if unknown_weight is not None:
        settings["unknown_weight"] = unknown_weight
    elif args.unknown_weight is not None:
        settings["unknown_weight"] = args.unknown_weight
    pipe = nlp.add_pipe("binary_rel", config=settings)
    train_egs = read(nlp, train, complete)
    dev_egs, test_egs = read(nlp, dev, True), read(nlp, test, True)
    optimizer = Adam(0.001, L2=0.01, grad_clip=1.0, use_averages=True)
    nlp.initialize(lambda: train_egs, sgd=optimizer)
    rng = random.Random(args.seed)
    best: Tuple[float, float, bytes, int] = (-1.0, 0.5, b"", 0)
    started, curve = time.time(), []
    for step, batch in enumerate(_batches(train_egs, args, rng), 1):
        pipe.update(batch, sgd=optimizer, drop=0.1)
        if step % args.eval_every == 0 or step == args.steps:
            with pipe.model.use_params(optimizer.averages):
                dev_scores = score(nlp, dev_egs, THRESHOLDS)
                t, s = max(dev_scores.items(), key=lambda kv: kv[1]["f"])
                curve.append({"step": step, "dev_f": s["f"], "threshold": t})
                if s["f"] > best[0]:
                    best = (s["f"], t, pipe.model.to_bytes(), step)
            print(f"  step {step} dev F1 {s['f']:.3f} (t={t}) {time.time() - started:.0f}s", flush=True)
        if step >= args.steps:
            break
    pipe.model.from_bytes(best[2])
    test_scores = score(nlp, test_egs, [best[1]])[best[1]]
    end_to_end = score(nlp, predicted_test, [best[1]])[best[1]] if predicted_test else None
    return {
        **({"end_to_end_test_f": round(end_to_end["f"], 4)} if end_to_end else {}),
        "n_train_examples": len(train_egs),
        "unknown_weight": pipe.cfg["unknown_weight"],
        "best_step": best[3],
        "threshold": best[1],
        "dev_f": round(best[0], 4),
        "test_p": round(test_scores["p"], 4),
        "test_r": round(test_scores["r"], 4),
        "test_f": round(test_scores["f"], 4),
        "curve": curve,
        "train_seconds": round(time.time() - started, 1),
    }


def load(path: Path, split: str, limit: int) -> List[dict]:
    files = sorted(path.glob(f"{split}.jsonl*"))
    records = list(iter_jsonl(files[0]))
    return records[:limit] if limit else records


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="dataset folders (train/dev/test)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--max-distance", type=int, default=80, help="covers 98%% of sanwen_zh's relations")
    parser.add_argument(
        "--exclusive-labels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a pair holds at most one relation (true of every pair of both datasets)",
    )
    parser.add_argument("--unknown-weight", type=float, default=None, help="binary_rel's (default: the pipe's)")
    parser.add_argument("--unknown-mask-above", type=float, default=None, help="every system's (default: none)")
    parser.add_argument("--train-limit", type=int, default=0, help="first N training records (0: all)")
    parser.add_argument("--eval-limit", type=int, default=0, help="first N dev and test records (0: all)")
    parser.add_argument(
        "--ner-steps", type=int, default=0, help="end to end: binary_ner's steps (0: gold entities only)"
    )
    parser.add_argument("--ner-max-span-length", type=int, default=10)
    parser.add_argument(
        "--suffix", default="", help="appended to the systems' names; their rows join the dataset's in --output"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "rel_benchmark.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = " ".join(["python", "bench/rel_benchmark.py", *(argv if argv is not None else sys.argv[1:])])
    results: Dict[str, Any] = {"datasets": {}}
    for path in args.data:
        name = path.name
        lang = "zh" if name.endswith("_zh") else "en"
        train = load(path, "train", args.train_limit)
        dev, test = load(path, "dev", args.eval_limit), load(path, "test", args.eval_limit)
        _, label_pairs = answered_label_pairs(read(spacy.blank(lang), train, True))
        teach = simulate_teach_1x(train, label_pairs, args.seed)
        n_accept = sum(a["answer"] == "accept" for a in teach)
        print(f"{name}: {len(train)} train texts, {len(teach)} questions ({n_accept} accepted)", flush=True)
        predicted_test, ner = train_ner(lang, train, dev, test, args) if args.ner_steps else (None, None)
        rows = {}
        for system in args.systems:
            data, weight = SYSTEMS[system]
            print(f" {system}", flush=True)
            records = teach if data == "teach" else train
            row = train_system(lang, records, data == "gold", dev, test, label_pairs, weight, args, predicted_test)
            rows[system + args.suffix] = {"command": command, **row} if args.suffix else row
            print(f" {system}{args.suffix}: test F1 {row['test_f']:.3f}", flush=True)
        results["datasets"][name] = {
            "command": command,
            "machine": platform.processor() or platform.machine(),
            "train_texts": len(train),
            "questions": len(teach),
            "accepted": n_accept,
            "dev_texts": len(dev),
            "test_texts": len(test),
            "ner": ner,
            "systems": rows,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        # Datasets of other runs (e.g. in parallel) are kept; this run's replace theirs.
        if args.output.exists():
            earlier = json.loads(args.output.read_text(encoding="utf8"))["datasets"]
            if args.suffix and name in earlier:
                # Extra rows (another setting) join the dataset's run; its other fields stay.
                results["datasets"][name] = {**earlier[name], "systems": {**earlier[name]["systems"], **rows}}
            results["datasets"] = {**earlier, name: results["datasets"][name]}
        args.output.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n", encoding="utf8")
    print("| dataset | system | dev F1 | test P | test R | test F1 |\n|---|---|---|---|---|---|")
    for name, data in results["datasets"].items():
        for system, row in data["systems"].items():
            print(f"| {name} | {system} | {row['dev_f']} | {row['test_p']} | {row['test_r']} | {row['test_f']} |")
    return results


if __name__ == "__main__":
    main()
