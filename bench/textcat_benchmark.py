#!/usr/bin/env python3
"""Benchmark: binary_textcat against spaCy's textcat_multilabel and textcat,
trained on the same simulated answers, evaluated on a gold test split.

    python bench/textcat_benchmark.py --data ../shared/data/tnews_zh --steps 600

The answers (teach-1x, `simulate_teach_1x`, used by every system): one question
per training text, in the file's order, from `random.Random(seed)`. Its label
is the gold label with probability 0.5, else a uniformly chosen other label
(multi-label data: a uniformly chosen gold label or, with probability 0.5, a
uniformly chosen non-gold one), answered accept if the gold annotation holds
it, else reject.

Systems (the same CNN tok2vec, optimizer, batch size, step budget and seed):
  binary_textcat        ours, on the answers (exclusive on multi-class data)
  textcat_multilabel    spaCy, on the same answers: accept 1.0, reject 0.0, other labels missing
  textcat               spaCy exclusive textcat, on the accepts only (the accepted label 1.0, the others 0.0)
  *_gold                the same pipes on the complete gold annotation (the ceilings; no exclusive
                        textcat_gold on multi-label data, which it cannot represent)

Score: accuracy on multi-class data (the argmax), macro-F1 on multi-label data
(a label is predicted at or above a threshold chosen per system on the dev
split), both with the optimizer's averaged weights; words per CPU second of
prediction on the test texts, one torch thread. Writes <out> (JSON) and prints
a Markdown table.
"""

import argparse
import json
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy
import spacy
import torch
from spacy.language import Language
from spacy.util import fix_random_seed, load_config

from spacy_binary_ner.records import iter_jsonl
from spacy_binary_ner.textcat.reader import textcat_records_to_examples

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {
    "zh": REPO / "configs" / "textcat" / "zh_textcat_cnn.cfg",
    "en": REPO / "configs" / "textcat" / "en_textcat_cnn.cfg",
}
SYSTEMS = [
    "binary_textcat",
    "textcat_multilabel",
    "textcat",
    "binary_textcat_gold",
    "textcat_multilabel_gold",
    "textcat_gold",
]
THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 20)]


def simulate_teach_1x(records: Sequence[dict], labels: Sequence[str], seed: int = 0) -> List[dict]:
    """One simulated answer per record (the module's definition of teach-1x).

    records (Sequence[dict]): Gold records, `cats` with every label.
    labels (Sequence[str]): The labels, in a fixed order.
    seed (int): The seed of the one random generator used.
    RETURNS (List[dict]): `{"text", "label", "answer"}` per record, in order.
    """
    rng = random.Random(seed)
    answers = []
    for record in records:
        golds = [label for label in labels if record["cats"].get(label, 0.0) >= 0.5]
        others = [label for label in labels if label not in golds]
        if golds and (not others or rng.random() < 0.5):
            label = rng.choice(golds)
        else:
            label = rng.choice(others)
        answers.append({"text": record["text"], "label": label, "answer": "accept" if label in golds else "reject"})
    return answers


def training_records(system: str, gold: Sequence[dict], answers: Sequence[dict], labels: Sequence[str]) -> List[dict]:
    """What a system trains on, as complete (`cats`) or answer records."""
    if system.endswith("_gold"):
        return list(gold)
    if system == "binary_textcat":
        return list(answers)
    if system == "textcat_multilabel":
        return [{"text": a["text"], "cats": {a["label"]: float(a["answer"] == "accept")}} for a in answers]
    return [
        {"text": a["text"], "cats": {label: float(label == a["label"]) for label in labels}}
        for a in answers
        if a["answer"] == "accept"
    ]


def build_nlp(
    system: str,
    lang: str,
    exclusive: bool,
    seed: int,
    hidden_width: Optional[int] = None,
    settings: Optional[Dict] = None,
) -> Language:
    """A blank pipeline with the system's component, on the config's tok2vec
    (binary_textcat's hidden layer as the config says, or `hidden_width`;
    its `settings` as the config says, updated with `settings`)."""
    fix_random_seed(seed)
    config = load_config(CONFIGS[lang])
    nlp = spacy.blank(lang, config={"nlp": {"tokenizer": config["nlp"]["tokenizer"]}})
    ours = config["components"]["binary_textcat"]["model"]
    tok2vec = json.loads(json.dumps(ours["tok2vec"]))
    base = system.removesuffix("_gold")
    if base == "binary_textcat":
        model = {**json.loads(json.dumps(ours)), **({} if hidden_width is None else {"hidden_width": hidden_width})}
        pipe_settings = {key: value for key, value in config["components"]["binary_textcat"].items() if key != "model"}
        pipe_settings.pop("factory", None)
        pipe_settings.pop("scorer", None)
        pipe_settings.update(settings or {}, exclusive=exclusive)
        nlp.add_pipe("binary_textcat", config={"model": model, **pipe_settings})
        return nlp
    model = {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": base == "textcat",
        "use_reduce_first": False,
        "use_reduce_last": False,
        "use_reduce_max": True,
        "use_reduce_mean": True,
        "tok2vec": tok2vec,
    }
    nlp.add_pipe(base, config={"model": model})
    return nlp


def predict_probs(nlp: Language, texts: Sequence[str], labels: Sequence[str], batch_size: int) -> numpy.ndarray:
    return numpy.array(
        [[doc.cats.get(label, 0.0) for label in labels] for doc in nlp.pipe(texts, batch_size=batch_size)]
    )


def score(probs: numpy.ndarray, gold: numpy.ndarray, multi_class: bool, threshold: float = 0.5) -> float:
    """Accuracy of the argmax (multi-class), or macro-F1 at the threshold."""
    if multi_class:
        return float((probs.argmax(axis=1) == gold.argmax(axis=1)).mean())
    pred = probs >= threshold
    truth = gold >= 0.5
    tp = (pred & truth).sum(axis=0)
    denominator = pred.sum(axis=0) + truth.sum(axis=0)
    f1 = numpy.where(denominator > 0, 2 * tp / numpy.maximum(denominator, 1), 0.0)
    return float(f1.mean())


def run_system(system, lang, exclusive, train, dev, test, labels, args) -> Dict:
    multi_class = exclusive
    settings = {} if args.unknown_weight is None else {"unknown_weight": args.unknown_weight}
    nlp = build_nlp(system, lang, exclusive, args.seed, args.hidden_width, settings)
    records = training_records(system, train, simulate_teach_1x(train, labels, args.seed), labels)
    examples = textcat_records_to_examples(
        nlp, records, complete=system.endswith("_gold") or system != "binary_textcat"
    )
    for label in labels:
        nlp.get_pipe(nlp.pipe_names[0]).add_label(label)
    optimizer = nlp.initialize(lambda: examples[:100])
    rng = random.Random(args.seed)
    order: List[int] = []
    start = time.perf_counter()
    losses: Dict[str, float] = {}
    for _ in range(args.steps):
        if len(order) < args.batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order += more
        batch, order = [examples[i] for i in order[: args.batch_size]], order[args.batch_size :]
        nlp.update(batch, sgd=optimizer, drop=0.1, losses=losses)
    train_seconds = time.perf_counter() - start
    result = {"system": system, "train_examples": len(examples), "train_seconds": round(train_seconds, 1)}
    with nlp.use_params(optimizer.averages):
        dev_probs = predict_probs(nlp, [r["text"] for r in dev], labels, args.batch_size)
        words = sum(len(nlp.make_doc(r["text"])) for r in test)
        # CPU time, one thread: time spent waiting for a core on a shared machine is left out.
        start = time.process_time()
        test_probs = predict_probs(nlp, [r["text"] for r in test], labels, args.batch_size)
        seconds = time.process_time() - start
    dev_gold = numpy.array([[r["cats"][label] for label in labels] for r in dev])
    test_gold = numpy.array([[r["cats"][label] for label in labels] for r in test])
    threshold = 0.5
    if not multi_class:
        threshold = max(THRESHOLDS, key=lambda t: score(dev_probs, dev_gold, False, t))
        result["threshold"] = threshold
    result["dev"] = round(score(dev_probs, dev_gold, multi_class, threshold), 4)
    result["test"] = round(score(test_probs, test_gold, multi_class, threshold), 4)
    result["words_per_second"] = round(words / seconds)
    result["final_loss"] = round(sum(losses.values()), 3)
    return result


def read(path: Path, limit: int) -> List[dict]:
    records = []
    for record in iter_jsonl(path):
        records.append(record)
        if limit and len(records) >= limit:
            break
    return records


def split_file(data: Path, split: str) -> Path:
    return next(p for p in (data / f"{split}.jsonl", data / f"{split}.jsonl.gz") if p.exists())


def code_version() -> str:
    """The commit of the tree, with "+changes" where the package differs from it."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        changed = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "spacy_binary_ner"], capture_output=True, text=True
        )
    except OSError:
        return ""
    return commit.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, required=True, help="folder with train/dev/test .jsonl(.gz), `cats` complete"
    )
    parser.add_argument("--lang", choices=sorted(CONFIGS), help="default: zh if the folder's name ends in _zh, else en")
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-limit", type=int, default=0, help="first N training records (0: all)")
    parser.add_argument("--dev-limit", type=int, default=2000)
    parser.add_argument("--test-limit", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hidden-width", type=int, help="binary_textcat's hidden layer (0: none); default: the config's"
    )
    parser.add_argument("--unknown-weight", type=float, help="binary_textcat's unknown_weight; default: the config's")
    parser.add_argument("--out", type=Path, help="write the result here (JSON)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    code = code_version()  # at the start: the tree may change during a long run
    lang = args.lang or ("zh" if args.data.name.endswith("_zh") else "en")
    train = read(split_file(args.data, "train"), args.train_limit)
    dev = read(split_file(args.data, "dev"), args.dev_limit)
    test = read(split_file(args.data, "test"), args.test_limit)
    labels = list(train[0]["cats"])
    exclusive = all(sum(v >= 0.5 for v in r["cats"].values()) == 1 for r in train)
    answers = simulate_teach_1x(train, labels, args.seed)
    rows = []
    for system in args.systems:
        if system == "textcat_gold" and not exclusive:
            continue
        rows.append(run_system(system, lang, exclusive, train, dev, test, labels, args))
        print(json.dumps(rows[-1]), flush=True)
    metric = "accuracy" if exclusive else "macro-F1"
    result = {
        "meta": {
            "data": args.data.name,
            "metric": metric,
            "exclusive": exclusive,
            "decisions": "teach-1x",
            "answers": len(answers),
            "accepted": sum(a["answer"] == "accept" for a in answers),
            "train": len(train),
            "dev": len(dev),
            "test": len(test),
            "steps": args.steps,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "hidden_width": args.hidden_width,
            "unknown_weight": args.unknown_weight,
            "code": code,
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "rows": rows,
    }
    print(f"| system | dev {metric} | test {metric} | words/s |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['system']} | {row['dev']:.3f} | {row['test']:.3f} | {row['words_per_second']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
