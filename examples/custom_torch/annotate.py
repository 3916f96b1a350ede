"""The user's BiLSTM in the annotation loop: a pipeline trained with
examples/custom_torch/config.cfg proposes spans, a simulated annotator answers
them from gold annotations, and the model learns after every batch of answers.

    python examples/custom_torch/annotate.py training/custom_torch/model-best \\
        --stream assets/en_gold_dev.jsonl --eval assets/en_gold_eval.jsonl

Prints the entity F1 on the evaluation file before and after the answers.
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List, Set, Tuple

import spacy
from spacy.util import import_file

from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.loop import AnnotationLoop

HERE = Path(__file__).resolve().parent


def read_jsonl(path: Path) -> List[dict]:
    with path.open(encoding="utf8") as f:
        return [json.loads(line) for line in f if line.strip()]


def answer(task: dict, gold: Dict[str, Set[Tuple[int, int, str]]]) -> dict:
    """What a careful annotator says: accept the span if the gold has it."""
    span = task["spans"][0]
    right = (span["start"], span["end"], span["label"]) in gold[task["text"]]
    return {**task, "answer": "accept" if right else "reject"}


def f1(nlp, records: List[dict]) -> float:
    return nlp.evaluate(records_to_examples(nlp, records, complete=True))["ents_f"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="a pipeline trained with examples/custom_torch/config.cfg")
    p.add_argument("--stream", type=Path, required=True, help="gold JSONL: texts to ask about, and the answers")
    p.add_argument("--eval", type=Path, required=True, help="gold JSONL to evaluate on")
    p.add_argument("--answers", type=int, default=200, help="how many questions to answer")
    p.add_argument("--batch", type=int, default=10, help="answers per update")
    args = p.parse_args(argv)
    import_file("my_module", HERE / "my_module.py")  # registers my.BiLSTM.v1, as --code does
    nlp = spacy.load(args.model)
    stream = read_jsonl(args.stream)
    gold = {r["text"]: {(s["start"], s["end"], s["label"]) for s in r["spans"]} for r in stream}
    eval_records = read_jsonl(args.eval)
    print(f"entity F1 on {args.eval.name} before: {f1(nlp, eval_records):.3f}")
    loop = AnnotationLoop(nlp, sorter="uncertainty")
    questions = loop(({"text": r["text"], "tokens": r.get("tokens")} for r in stream))
    batch: List[dict] = []
    counts = {"accept": 0, "reject": 0}
    for task in questions:
        batch.append(answer(task, gold))
        counts[batch[-1]["answer"]] += 1
        if len(batch) == args.batch:
            loop.update(batch)
            batch = []
        if sum(counts.values()) >= args.answers:
            break
    if batch:
        loop.update(batch)
    print(f"answered {counts['accept']} accept, {counts['reject']} reject")
    print(f"entity F1 on {args.eval.name} after: {f1(nlp, eval_records):.3f}")


if __name__ == "__main__":
    main()
