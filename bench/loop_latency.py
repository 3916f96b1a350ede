"""Latency of the annotation loop: `update()` on a batch of 10 answers and
`predict()` throughput, binary_ner against spaCy's beam_ner in the same run.

Both pipelines use the same CNN tok2vec (binary_ner from configs/LANG_cnn.cfg,
beam_ner as in `spacy_binary_ner.simulate`). The answer batches are the same
for both: one answer per sentence of the pool, an accept of a gold span or a
reject of a span that is not gold, half and half. Measurements alternate
between the systems round by round, so both see the same machine load.

    python bench/loop_latency.py --data ../shared/data/resume_zh --lang zh

`--split` instead times the phases of binary_ner's update (the same steps as
`BinaryNER.update`, one by one) and prints their medians.
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from spacy_binary_ner.data import records_to_examples  # noqa: E402
from spacy_binary_ner.loop import AnnotationLoop, TaskText, initialize_pipeline  # noqa: E402
from spacy_binary_ner.ops import use_cpu_ops  # noqa: E402
from spacy_binary_ner.simulate import BeamNERProposer, build_nlp, read_gold_records  # noqa: E402


def answer_batches(pool: List[dict], n_batches: int, batch_size: int, seed: int) -> List[List[dict]]:
    """Batches of answers, one per sentence: accept a gold span or reject a
    span of the same length moved off the gold ones."""
    rng = random.Random(seed)
    sentences = [r for r in pool if r.get("spans") and len(r["text"]) > 4]
    batches = []
    for _ in range(n_batches):
        batch = []
        for record in rng.sample(sentences, batch_size):
            gold = record["spans"][rng.randrange(len(record["spans"]))]
            task = {"text": record["text"], "tokens": record.get("tokens")}
            if rng.random() < 0.5:
                task["spans"] = [{"start": gold["start"], "end": gold["end"], "label": gold["label"]}]
                task["answer"] = "accept"
            else:
                golds = {(s["start"], s["end"], s["label"]) for s in record["spans"]}
                length = max(1, min(gold["end"] - gold["start"], len(record["text"]) - 1))
                for _ in range(20):
                    start = rng.randrange(0, len(record["text"]) - length + 1)
                    if (start, start + length, gold["label"]) not in golds:
                        break
                task["spans"] = [{"start": start, "end": start + length, "label": gold["label"]}]
                task["answer"] = "reject"
            if not task["tokens"]:
                del task["tokens"]
            batch.append(task)
        batches.append(batch)
    return batches


def split_update(loop: AnnotationLoop, batches: List[List[dict]]) -> Dict[str, float]:
    """Median milliseconds of each phase of binary_ner's update on each batch
    (no replay): reading the answers, the tok2vec, span layers and output
    layer forward, the loss and its gradient, the backward passes, the
    optimizer step."""
    from thinc.api import set_dropout_rate

    pipe, nlp = loop.pipe, loop.nlp
    tok2vec, spans, output = (pipe.model.get_ref(name) for name in ("tok2vec", "span_encoder", "output_layer"))
    phases = [
        "read answers",
        "tok2vec forward",
        "span layers forward",
        "output layer forward",
        "loss",
        "output layer backward",
        "span layers backward",
        "tok2vec backward",
        "optimizer step",
    ]
    times: Dict[str, List[float]] = {name: [] for name in phases + ["total"]}
    for batch in batches:
        marks = [time.perf_counter()]
        examples = records_to_examples(nlp, [dict(t) for t in batch], labels=pipe.labels)
        marks.append(time.perf_counter())
        set_dropout_rate(pipe.model, loop.drop)
        X, back_tok2vec = tok2vec.begin_update([eg.predicted for eg in examples])
        marks.append(time.perf_counter())
        S, back_spans = spans.begin_update(X)
        marks.append(time.perf_counter())
        Y, back_output = output.begin_update(S)
        marks.append(time.perf_counter())
        _, dY = pipe.get_loss(examples, Y, self_training=loop.self_training)
        marks.append(time.perf_counter())
        dS = back_output(dY)
        marks.append(time.perf_counter())
        dX = back_spans(dS)
        marks.append(time.perf_counter())
        back_tok2vec(dX)
        marks.append(time.perf_counter())
        pipe.finish_update(loop.optimizer)
        marks.append(time.perf_counter())
        for name, begin, end in zip(phases, marks, marks[1:]):
            times[name].append(1000 * (end - begin))
        times["total"].append(1000 * (marks[-1] - marks[0]))
    return {name: statistics.median(values) for name, values in times.items()}


def split_predict(loop: AnnotationLoop, stream: List[dict], rounds: int) -> Dict[str, float]:
    """Sentences per second of `loop.predict` on the stream, and of the
    tok2vec's forward pass alone on the same chunks (median of `rounds`)."""
    tok2vec = loop.pipe.model.get_ref("tok2vec")
    docs = [TaskText.from_task(loop.nlp, task).doc for task in stream]
    whole: List[float] = []
    alone: Dict[int, List[float]] = {loop.chunk_size: [], 256: []}
    for _ in range(rounds):
        begin = time.perf_counter()
        sum(1 for _ in loop.predict(stream))
        whole.append(len(stream) / (time.perf_counter() - begin))
        for size, values in alone.items():
            begin = time.perf_counter()
            for i in range(0, len(docs), size):
                tok2vec.predict(docs[i : i + size])
            values.append(len(docs) / (time.perf_counter() - begin))
    result = {"predict sentences/s": statistics.median(whole)}
    for size, values in alone.items():
        result[f"predict tok2vec-only sentences/s, chunks of {size}"] = statistics.median(values)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "resume_zh")
    p.add_argument("--lang", default="zh")
    p.add_argument("--batches", type=int, default=30, help="timed update batches per system and round")
    p.add_argument("--warmup", type=int, default=10, help="untimed update batches first")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of measurements")
    p.add_argument("--predict-sentences", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--replay",
        type=int,
        default=0,
        help="earlier answered texts rehearsed per update, as AnnotationLoop(replay=...); the simulator uses 10",
    )
    p.add_argument(
        "--split", action="store_true", help="only time the phases of binary_ner's update (median ms per phase)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument(
        "--blas",
        choices=["blis", "numpy"],
        default="blis",
        help="CPU matrix products of both systems: Thinc's default BLIS, or numpy's BLAS "
        "(spacy_binary_ner.ops.use_cpu_ops)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    use_cpu_ops(use_blis=args.blas == "blis")
    pool = read_gold_records(args.data / "train.jsonl")
    labels = sorted({s["label"] for r in pool for s in r["spans"]})
    config = REPO / "configs" / f"{args.lang}_cnn.cfg"
    systems = ["binary_ner"] if args.split else ["binary_ner", "beam_ner"]
    loops: Dict[str, AnnotationLoop] = {}
    for system in systems:
        nlp = build_nlp(system, config, args.lang, args.seed)
        component = "beam_ner" if system == "beam_ner" else None
        proposer = BeamNERProposer(nlp) if system == "beam_ner" else None
        optimizer = initialize_pipeline(nlp, labels, pool[:10], component=component)
        loops[system] = AnnotationLoop(
            nlp, component=component, proposer=proposer, optimizer=optimizer, replay=args.replay, seed=args.seed
        )
    warm = answer_batches(pool, args.warmup, 10, args.seed + 1)
    for system in systems:
        for batch in warm:
            loops[system].update([dict(t) for t in batch])
    stream = [{"text": r["text"], "tokens": r["tokens"]} for r in pool[: args.predict_sentences]]
    if args.split:
        batches = answer_batches(pool, args.batches * args.rounds, 10, args.seed + 100)
        split = split_update(loops["binary_ner"], batches)
        split.update(split_predict(loops["binary_ner"], stream, args.rounds))
        print(
            f"\n{args.data.name}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            "torch threads 1, "
            f"{args.blas} matrix products, binary_ner, {len(batches)} updates of 10 answers, median ms per phase\n"
        )
        print("| phase | median ms |\n|---|---|")
        for name, ms in split.items():
            if not name.startswith("predict"):
                print(f"| {name} | {ms:.1f} |")
        chunk = loops["binary_ner"].chunk_size
        print(
            f"\npredict on {len(stream)} sentences, median of {args.rounds}: "
            f"{split['predict sentences/s']:.0f} sentences/s "
            f"in chunks of {chunk}; the tok2vec forward pass alone (a bound no span layer can pass): "
            f"{split[f'predict tok2vec-only sentences/s, chunks of {chunk}']:.0f} sentences/s in chunks of {chunk}, "
            f"{split['predict tok2vec-only sentences/s, chunks of 256']:.0f} in chunks of 256"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"split_ms": split, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2)
            )
        return 0
    update_ms: Dict[str, List[float]] = {s: [] for s in systems}
    predict_sps: Dict[str, List[float]] = {s: [] for s in systems}
    for round_ in range(args.rounds):
        batches = answer_batches(pool, args.batches, 10, args.seed + 100 + round_)
        for system in systems:
            loop = loops[system]
            for batch in batches:
                begin = time.perf_counter()
                loop.update([dict(t) for t in batch])
                update_ms[system].append(1000 * (time.perf_counter() - begin))
            begin = time.perf_counter()
            n_tasks = sum(1 for _ in loop.predict(stream))
            predict_sps[system].append(len(stream) / (time.perf_counter() - begin))
            print(
                f"round {round_ + 1} {system}: update median "
                f"{statistics.median(update_ms[system][-len(batches) :]):.1f} ms, "
                f"predict {predict_sps[system][-1]:.0f} sentences/s ({n_tasks} proposals)",
                file=sys.stderr,
            )
    rows = []
    for system in systems:
        rows.append(
            {
                "system": system,
                "update_ms_median": statistics.median(update_ms[system]),
                "update_ms_mean": statistics.mean(update_ms[system]),
                "predict_sentences_per_s": statistics.median(predict_sps[system]),
            }
        )
    beam = rows[1]
    print(
        f"\n{args.data.name}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads 1, {args.blas} matrix products, {args.rounds} rounds x {args.batches} batches of 10 answers "
        f"(replay {args.replay}), "
        f"predict on {len(stream)} train sentences (chunks of {loops['binary_ner'].chunk_size})\n"
    )
    print(
        "| system | update() of 10 answers, median ms | mean ms | × beam_ner (median) "
        "| predict sentences/s | × beam_ner |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['system']} | {row['update_ms_median']:.1f} | {row['update_ms_mean']:.1f} | "
            f"{row['update_ms_median'] / beam['update_ms_median']:.2f} | {row['predict_sentences_per_s']:.0f} | "
            f"{row['predict_sentences_per_s'] / beam['predict_sentences_per_s']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
