"""`python -m spacy_binary_ner simulate`: the annotation loop against an oracle.

A gold corpus is the pool: its texts are streamed through `AnnotationLoop`
without their entities, an oracle answers every question (accept iff the span
and label are gold), the model is updated after every batch, and it is
evaluated on a gold test set every K decisions. Strategies:

- `uncertainty`, `random`, `confident`: `binary_ner` with that sorter;
- `beam_ner`: spaCy's `beam_ner` (same CNN tok2vec) in the same loop: its
  `scored_ents` as proposals, the uncertainty sorter, the same pattern mix,
  rejects through `incorrect_spans_key`.

Writes `curve.jsonl` (one line per strategy and evaluation point) and
`curve.png` (test F1 against decisions, one line per strategy).
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import fix_random_seed, load_config, load_model_from_config
from thinc.api import Config

from .cli_args import ArgumentParser, fail, input_error, language_error, output_folder_error
from .data import iter_jsonl, records_to_examples
from .loop import (
    LOOP_THRESHOLD,
    AnnotationLoop,
    PatternMatcher,
    PatternSchedule,
    Proposals,
    initialize_pipeline,
    set_hashes,
)
from .ops import cpu_ops
from .records import nan_to_null
from .threshold import THRESHOLDS as TRAINING_THRESHOLDS
from .threshold import best_threshold
from .threshold import scores_by_threshold as threshold_scores

STRATEGIES = ("uncertainty", "random", "confident", "beam_ner")
GoldKey = Tuple[int, int, str]

# spaCy's ner / beam_ner with the tok2vec of our CNN configs: the peers of the
# simulator and of bench/binary_benchmark.py.
_PEER_COMPONENT = """
[components]

[components.{name}]
factory = "{name}"
incorrect_spans_key = "incorrect_spans"
moves = null
scorer = {{"@scorers":"spacy.ner_scorer.v1"}}
update_with_oracle_cut_size = 100
{extra}
[components.{name}.model]
@architectures = "spacy.TransitionBasedParser.v2"
state_type = "ner"
extra_state_tokens = false
hidden_width = 64
maxout_pieces = 2
use_upper = true
nO = null

[components.{name}.model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[components.{name}.model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 96
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 1000, 2500, 2500]
include_static_vectors = false

[components.{name}.model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 96
depth = 4
window_size = 1
maxout_pieces = 3
"""
_BEAM_SETTINGS = "beam_width = 32\nbeam_density = 0.01\nbeam_update_prob = 0.5\n"


class BeamNERProposer:
    """The loop's proposer for spaCy's `beam_ner`: its `scored_ents`, the
    spans at or above `min_score` (at most `max_per_text`, else the best one).

    nlp (Language): The pipeline, for the label strings.
    component (str): The `beam_ner` component's name.
    min_score (float): Smallest probability of a proposed span.
    max_per_text (int): Most spans proposed per doc.
    """

    def __init__(self, nlp: Language, component: str = "beam_ner", min_score: float = 0.01, max_per_text: int = 8):
        self.nlp = nlp
        self.pipe = nlp.get_pipe(component)
        self.min_score = min_score
        self.max_per_text = max_per_text

    def __call__(self, docs: List[Doc]) -> Proposals:
        strings = self.nlp.vocab.strings
        out: Proposals = []
        for scores in self.pipe.scored_ents(self.pipe.predict(docs)):
            table = {
                (s, e, label if isinstance(label, str) else strings[label]): float(p)
                for (s, e, label), p in scores.items()
            }
            ranked = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
            chosen = [kv for kv in ranked if kv[1] >= self.min_score][: self.max_per_text] or ranked[:1]
            candidates = [(s, e, label, p) for (s, e, label), p in chosen]
            out.append((candidates, lambda s, e, label, table=table: table.get((s, e, label), 0.0)))
        return out


def spacy_peer_components(factory: str) -> Config:
    """The `[components]` section of spaCy's `ner` or `beam_ner`, learning from
    rejects through `incorrect_spans_key`, with the CNN tok2vec of
    `configs/*_cnn.cfg` (width 96, depth 4).

    factory (str): "ner" or "beam_ner".
    RETURNS (Config): A config with the one component under `components`.
    """
    if factory not in ("ner", "beam_ner"):
        raise ValueError(f"factory must be 'ner' or 'beam_ner', not {factory!r}")
    extra = _BEAM_SETTINGS if factory == "beam_ner" else ""
    return Config().from_str(_PEER_COMPONENT.format(name=factory, extra=extra), interpolate=False)


def read_gold_records(path: Path, nlp: Optional[Language] = None) -> List[dict]:
    """Read a gold corpus: our JSONL format (file, .gz or folder) or a `.spacy`
    DocBin (its `doc.ents`; needs `nlp` for the vocab).

    RETURNS (List[dict]): Records with `text`, `tokens` and `spans`.
    """
    if path.suffix == ".spacy":
        if nlp is None:
            nlp = spacy.blank("xx")
        records = []
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            tokens = [{"text": t.text, "start": t.idx, "end": t.idx + len(t), "id": t.i} for t in doc]
            spans = [{"start": e.start_char, "end": e.end_char, "label": e.label_} for e in doc.ents]
            records.append({"text": doc.text, "tokens": tokens, "spans": spans})
        return records
    records = list(iter_jsonl(path))
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path} record {i}: a gold record needs a string `text`.")
        if not isinstance(record.get("spans", []), list):
            raise ValueError(f"{path} record {i}: `spans` must be a list of {{start, end, label}}.")
    return records


def build_nlp(strategy: str, config_path: Path, lang: str, seed: int) -> Language:
    """The pipeline a strategy trains: `binary_ner` from the config, or spaCy's
    `beam_ner` with the same tokenizer settings."""
    config = load_config(config_path)
    if config["nlp"]["lang"] != lang:
        raise ValueError(
            f"--lang {lang} does not match the config's [nlp] lang = {config['nlp']['lang']!r} "
            f"({config_path}): pass the matching config (configs/{lang}_cnn.cfg) or --lang."
        )
    config["system"]["seed"] = seed
    config["training"]["seed"] = seed
    if strategy == "beam_ner":
        config["components"] = spacy_peer_components("beam_ner")["components"]
        config["nlp"]["pipeline"] = ["beam_ner"]
    fix_random_seed(seed)
    return load_model_from_config(config, auto_fill=True)


def pool_stream(pool: Sequence[dict], seed: int) -> Iterator[dict]:
    """The pool's texts, without their entities, shuffled, pass after pass."""
    rng = random.Random(seed)
    tasks = []
    for i, record in enumerate(pool):
        task = {"text": record["text"], "meta": {"pool_index": i}}
        if record.get("tokens"):
            task["tokens"] = record["tokens"]
        tasks.append(set_hashes(task))
    while True:
        order = list(range(len(tasks)))
        rng.shuffle(order)
        for i in order:
            yield tasks[i]


def gold_index(pool: Sequence[dict]) -> Dict[int, Set[GoldKey]]:
    """Gold spans by `_input_hash` of the text."""
    index: Dict[int, Set[GoldKey]] = {}
    for record in pool:
        key = set_hashes({"text": record["text"]})["_input_hash"]
        spans = index.setdefault(key, set())
        spans.update((s["start"], s["end"], s["label"]) for s in record.get("spans", []))
    return index


def oracle(task: dict, gold: Dict[int, Set[GoldKey]]) -> str:
    """Accept iff the task's span and label are gold."""
    span = task["spans"][0]
    return "accept" if (span["start"], span["end"], span["label"]) in gold[task["_input_hash"]] else "reject"


# The candidates of training's dev_threshold callback.
THRESHOLDS = TRAINING_THRESHOLDS


def scores_by_threshold(
    loop: AnnotationLoop, examples: Sequence[Example], thresholds: Sequence[float]
) -> Dict[float, Dict[str, Any]]:
    """Entity scores (as `threshold.scores_by_threshold`) of the loop's
    `binary_ner` on gold examples at each decision threshold, from one
    prediction with the weights the loop proposes with."""
    docs = [eg.predicted.copy() for eg in examples]
    with loop.averaged_params():
        scores = loop.pipe.predict(docs)
    return threshold_scores(loop.pipe, docs, scores, [eg.reference for eg in examples], thresholds)


def build_loop(
    strategy: str, pool: Sequence[dict], labels: Sequence[str], args: argparse.Namespace, patterns: Optional[List[dict]]
) -> Tuple[Language, AnnotationLoop]:
    """A new pipeline for a strategy and the annotation loop around it, with
    the loop settings of `args` (sorter, patterns, chunks, replay, weights).

    RETURNS (Tuple[Language, AnnotationLoop]): The pipeline and the loop.
    """
    with cpu_ops(use_blis=args.blas == "blis"):
        nlp = build_nlp(strategy, args.config, args.lang, args.seed)
        component = "beam_ner" if strategy == "beam_ner" else None
        optimizer = initialize_pipeline(nlp, labels, pool[:10], component=component, threshold=args.threshold)
    if args.learn_rate is not None:
        optimizer.learn_rate = args.learn_rate
    matcher = PatternMatcher(nlp, patterns) if patterns else None
    loop = AnnotationLoop(
        nlp,
        component=component,
        proposer=BeamNERProposer(nlp, max_per_text=args.max_per_text) if strategy == "beam_ner" else None,
        sorter="uncertainty" if strategy == "beam_ner" else strategy,
        patterns=matcher,
        schedule=PatternSchedule(
            ratio=args.pattern_ratio,
            until=args.patterns_until,
            max_answers=args.pattern_max_answers,
            lookahead=args.pattern_lookahead,
        ),
        chunk_size=args.chunk_size,
        max_per_text=args.max_per_text,
        replay=args.replay,
        optimizer=optimizer,
        average_weights=not args.live_weights,
        self_training=args.self_training,
        seed=args.seed,
    )
    return nlp, loop


def run_strategy(
    strategy: str,
    pool: Sequence[dict],
    test: Sequence[dict],
    labels: Sequence[str],
    args: argparse.Namespace,
    patterns: Optional[List[dict]] = None,
    progress: bool = True,
    dev: Optional[Sequence[dict]] = None,
) -> List[Dict[str, Any]]:
    """Run one strategy for the whole budget; with `dev` (gold records), each
    evaluation also chooses the decision threshold on it. The models are
    built with the CPU matrix products of `args.blas`. RETURNS
    (List[Dict[str, Any]]): one curve point per evaluation."""
    nlp, loop = build_loop(strategy, pool, labels, args, patterns)
    gold = gold_index(pool)
    test_examples = records_to_examples(nlp, test, complete=True)
    dev_examples = records_to_examples(nlp, dev, complete=True) if dev and loop.is_binary else None
    questions = loop(pool_stream(pool, args.seed))
    bar = _progress(args.budget, strategy, progress)
    points: List[Dict[str, Any]] = []
    decisions, losses, begin = 0, [], time.perf_counter()
    next_eval = args.eval_every
    while decisions < args.budget:
        batch = []
        for task in questions:
            task["answer"] = oracle(task, gold)
            batch.append(task)
            if len(batch) == min(args.batch_size, args.budget - decisions):
                break
        if not batch:
            raise RuntimeError(f"{strategy}: the loop ran out of questions after {decisions} decisions")
        losses.append(loop.update(batch))
        decisions += len(batch)
        bar.update(len(batch))
        if decisions >= next_eval or decisions >= args.budget:
            if dev_examples is not None:
                # The loop's threshold is chosen on dev as in training (ties: nearest the configured
                # one), then one prediction of the test split gives every threshold's scores.
                on_dev = scores_by_threshold(loop, dev_examples, sorted({*THRESHOLDS, args.threshold}))
                threshold = best_threshold(
                    {t: float(s["ents_f"] or 0.0) for t, s in on_dev.items()},
                    args.threshold,
                    {t: s["doc_counts"] for t, s in on_dev.items()},
                )
                loop.pipe.cfg["threshold"] = threshold
                on_test = scores_by_threshold(loop, test_examples, sorted({*THRESHOLDS, args.threshold}))
                scores = on_test[threshold]
            else:
                with loop.averaged_params():
                    scores = nlp.evaluate(test_examples)
            point = {
                "strategy": strategy,
                "decisions": decisions,
                "accepts": loop.answer_counts["accept"],
                "rejects": loop.answer_counts["reject"],
                "f": scores["ents_f"],
                "p": scores["ents_p"],
                "r": scores["ents_r"],
                "f_per_label": {k: round(v["f"], 4) for k, v in sorted((scores.get("ents_per_type") or {}).items())},
                "mean_loss": sum(losses) / len(losses),
                "update_ms_median": round(loop.median_update_ms(), 1),
                "pattern_accepts": loop.stats["answered: pattern accept"],
                "pattern_rejects": loop.stats["answered: pattern reject"],
                "model_accepts": loop.stats["answered: model accept"],
                "model_rejects": loop.stats["answered: model reject"],
                "seconds": round(time.perf_counter() - begin, 1),
            }
            if dev_examples is not None:
                test_f = {t: float(s["ents_f"] or 0.0) for t, s in on_test.items()}
                point.update(
                    {
                        "dev_threshold": threshold,
                        "dev_f": float(on_dev[threshold]["ents_f"] or 0.0),
                        "f_dev_threshold": test_f[threshold],
                        "f_configured_threshold": test_f[args.threshold],
                        "test_f_by_threshold": {str(t): round(f, 4) for t, f in test_f.items()},
                    }
                )
            points.append(point)
            losses = []
            bar.set_postfix(f1=f"{point['f']:.3f}", accepts=point["accepts"])
            while next_eval <= decisions:
                next_eval += args.eval_every
    bar.close()
    skipped = {k: v for k, v in loop.stats.items() if "skipped" in k}
    if skipped:
        print(f"{strategy}: {skipped}", file=sys.stderr)
    return points


def _progress(total: int, name: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with spaCy; be safe anyway
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=f"{name:>11}", unit="decision", file=sys.stderr, leave=True)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def plot(
    points: Sequence[Dict[str, Any]],
    path: Path,
    title: str = "",
    x: str = "decisions",
    xlabel: str = "decisions (accept/reject answers)",
    series: str = "strategy",
) -> bool:
    """Plot test F1 against `x` (a key of the points), one line per value of
    `series` (e.g. "strategy").

    RETURNS (bool): Whether the plot was written (False without matplotlib).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed: no plot written (the curve is in the JSONL). "
            "Install it with: pip install 'spacy-binary-ner[plot]'",
            file=sys.stderr,
        )
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name in dict.fromkeys(p[series] for p in points):
        mine = [p for p in points if p[series] == name]
        ax.plot([0] + [p[x] for p in mine], [0.0] + [p["f"] or 0.0 for p in mine], marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test F1")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def table(points: Sequence[Dict[str, Any]]) -> str:
    """A markdown table: test F1 per strategy (rows) and evaluation point (columns)."""
    strategies = list(dict.fromkeys(p["strategy"] for p in points))
    steps = sorted({p["decisions"] for p in points})
    lines = [
        "| strategy | " + " | ".join(str(s) for s in steps) + " | accepts | update ms (median) |",
        "|---|" + "---|" * (len(steps) + 2),
    ]
    for strategy in strategies:
        mine = {p["decisions"]: p for p in points if p["strategy"] == strategy}
        cells = [f"{mine[s]['f']:.3f}" if s in mine else "" for s in steps]
        last = mine[max(mine)]
        lines.append(f"| {strategy} | " + " | ".join(cells) + f" | {last['accepts']} | {last['update_ms_median']} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m spacy_binary_ner simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=Path, required=True, help="gold corpus to annotate (JSONL or .spacy)")
    p.add_argument("--test", type=Path, required=True, help="gold test set (JSONL or .spacy)")
    p.add_argument("--patterns", type=Path, default=None, help="cold-start EntityRuler patterns (JSONL)")
    p.add_argument("--strategy", default="uncertainty", help=f"comma list of {', '.join(STRATEGIES)}")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--budget", type=int, default=2000, help="decisions in all")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lang", default="zh")
    p.add_argument("--config", type=Path, default=None, help="binary_ner config (default configs/LANG_cnn.cfg)")
    p.add_argument("--output", type=Path, required=True, help="folder for curve.jsonl and curve.png")
    p.add_argument("--pattern-ratio", type=float, default=0.5)
    p.add_argument(
        "--pattern-lookahead",
        type=int,
        default=0,
        help="texts read ahead of the model for pattern matches (default 0: as the model reads them)",
    )
    p.add_argument(
        "--pattern-max-answers",
        type=int,
        default=None,
        help="stop asking a pattern after this many answers to its matches (default: no limit)",
    )
    p.add_argument("--patterns-until", type=int, default=None, help="answers after which patterns stop")
    p.add_argument("--replay", type=int, default=10, help="earlier answered texts rehearsed per update")
    p.add_argument(
        "--learn-rate",
        type=float,
        default=None,
        help="default: the loop's (spacy_binary_ner.loop.LOOP_LEARN_RATE, 0.005, chosen on resume_zh dev)",
    )
    p.add_argument("--chunk-size", type=int, default=8, help="texts scored at a time")
    p.add_argument("--max-per-text", type=int, default=8)
    p.add_argument(
        "--dev",
        type=Path,
        default=None,
        help="gold dev set: at each evaluation the loop's decision threshold is chosen on it (as training's "
        "dev_threshold callback; ties: nearest --threshold), and test F1 is reported at it",
    )
    p.add_argument(
        "--live-weights",
        action="store_true",
        help="propose and evaluate with the live weights, not their moving average",
    )
    p.add_argument(
        "--self-training",
        action="store_true",
        help="let updates use the config's self-training targets (pseudo_above); off by default",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=LOOP_THRESHOLD,
        help="binary_ner decision threshold (with --dev: the tie-break; default: the loop's, "
        f"spacy_binary_ner.loop.LOOP_THRESHOLD, {LOOP_THRESHOLD}, chosen on resume_zh dev)",
    )
    p.add_argument(
        "--blas",
        choices=["blis", "numpy"],
        default="blis",
        help="CPU matrix products: Thinc's default BLIS, or numpy's BLAS, faster on CPUs where BLIS "
        "falls back to a slow kernel (spacy_binary_ner.ops.use_cpu_ops; "
        "bench/loop_latency.py --split --blas numpy)",
    )
    p.add_argument("--no-progress", action="store_true")
    from .simulate_correct import add_arguments, check_arguments

    add_arguments(p)
    args = p.parse_args(argv)
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        p.error(f"argument --strategy: unknown strategy {bad}: use a comma list of {', '.join(STRATEGIES)}")
    args.strategies = strategies
    fail(p, language_error(args.lang))
    if args.config is None:
        args.config = Path(__file__).resolve().parent.parent / "configs" / f"{args.lang}_cnn.cfg"
    for name in ("pool", "test", "dev", "patterns", "config"):
        value = getattr(args, name)
        if value is not None:
            fail(p, input_error(value, f"--{name}"))
    for name in ("batch_size", "budget", "eval_every", "chunk_size", "max_per_text"):
        if getattr(args, name) < 1:
            p.error(f"argument {_flag(name)}: must be positive, not {getattr(args, name)}")
    for name in ("replay", "pattern_lookahead"):
        if getattr(args, name) < 0:
            p.error(f"argument {_flag(name)}: must be 0 or more, not {getattr(args, name)}")
    if not 0.0 <= args.pattern_ratio <= 1.0:
        p.error(f"argument --pattern-ratio: must be between 0 and 1, not {args.pattern_ratio}")
    if not 0.0 < args.threshold < 1.0:
        p.error(f"argument --threshold {args.threshold}: must be between 0 and 1")
    check_arguments(p, args)
    fail(p, output_folder_error(args.output, "--output"))
    return args


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    pool = read_gold_records(args.pool, spacy.blank(args.lang) if args.pool.suffix == ".spacy" else None)
    test = read_gold_records(args.test, spacy.blank(args.lang) if args.test.suffix == ".spacy" else None)
    dev = (
        read_gold_records(args.dev, spacy.blank(args.lang) if args.dev.suffix == ".spacy" else None)
        if args.dev
        else None
    )
    labels = sorted({s["label"] for r in pool for s in r.get("spans", [])})
    if not labels:
        print(f"{args.pool}: no gold entities, nothing to learn.", file=sys.stderr)
        return 1
    patterns = list(iter_jsonl(args.patterns)) if args.patterns else None
    if args.timed:
        from .simulate_correct import run_timed

        return run_timed(args, pool, test, labels, patterns)
    args.output.mkdir(parents=True, exist_ok=True)
    curve_path = args.output / "curve.jsonl"
    all_points: List[Dict[str, Any]] = []
    with curve_path.open("w", encoding="utf8") as out:
        for strategy in args.strategies:
            points = run_strategy(strategy, pool, test, labels, args, patterns, progress=not args.no_progress, dev=dev)
            for point in points:
                row = nan_to_null({**point, "seed": args.seed, "batch_size": args.batch_size})
                out.write(json.dumps(row, allow_nan=False) + "\n")
            out.flush()
            all_points.extend(points)
    title = f"{args.pool.parent.name or args.pool.name}: batch {args.batch_size}, seed {args.seed}" + (
        ", patterns" if patterns else ""
    )
    plotted = plot(all_points, args.output / "curve.png", title)
    print(table(all_points))
    print(f"wrote {curve_path}" + (f" and {args.output / 'curve.png'}" if plotted else ""))
    return 0
