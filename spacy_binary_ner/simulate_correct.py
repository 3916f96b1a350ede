"""`simulate --mode`: annotation strategies against simulated annotator time.

An oracle annotates the pool, and a cost model (`CostModel`) charges each of
its actions the seconds a person would take; the model is evaluated on the
gold test set every `--eval-minutes` of that simulated time. Modes:

- `teach`: binary questions, as plain `simulate`; each decision costs
  `--seconds-per-decision`;
- `correct`: each text of the pool (in the order `simulate` streams it) is
  pre-highlighted with the model's entities, the oracle corrects it to gold,
  and the loop learns from it as a complete annotation; a text costs
  `--seconds-per-text` plus `--seconds-per-edit` per span added, removed or
  relabelled (`consistent.count_edits`);
- `teach-then-correct`: `teach` until `--switch-minutes`, then silver-to-gold:
  each text answered so far, in the order first asked, is pre-highlighted
  with `consistent.best_consistent` (its answers and the model) and corrected
  at the correction cost, then new texts as in `correct`. The answered texts
  come first because their pre-highlights are the best the answers paid for.

A model that learns from whole texts and one that learns from decisions meet
in the same `AnnotationLoop.update` (batches of `--batch-size` answers or
texts, with replay), and every mode starts from the same seeded model. What
an evaluation at time T sees is what was learned from the actions finished by
T (a pending batch is learned first).
"""

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from spacy.training import Example

from .consistent import Edits, best_consistent, count_edits
from .data import records_to_examples
from .loop import AnnotationLoop, Task, TaskText, set_hashes
from .records import nan_to_null, parse_answer
from .simulate import build_loop, gold_index, oracle, plot, pool_stream

MODES = ("teach", "correct", "teach-then-correct")
TEACH_PASSES = 10


@dataclass(frozen=True)
class CostModel:
    """Seconds of annotator time per action (see docs/loop.md, "Annotator
    time", for the defaults' reasoning).

    seconds_per_decision (float): One binary accept/reject answer.
    seconds_per_text (float): Reading a pre-highlighted text and accepting it.
    seconds_per_edit (float): One span added, removed or relabelled on it.
    """

    seconds_per_decision: float = 1.0
    seconds_per_text: float = 3.0
    seconds_per_edit: float = 1.5

    def correction(self, edits: Edits) -> float:
        """The seconds to correct one text with these edits."""
        return self.seconds_per_text + self.seconds_per_edit * edits.total


class TimedRun:
    """One mode's simulated clock: it charges each action its seconds, learns
    in batches, and evaluates the model at each multiple of the evaluation
    interval before an action that would run past it.

    mode (str): The mode, written into each point.
    loop (AnnotationLoop): The loop that learns.
    test (List[Example]): The gold test examples.
    budget (float): Simulated seconds in all.
    every (float): Simulated seconds between evaluations.
    batch_size (int): Binary answers per update.
    texts_per_update (int): Corrected texts per update.
    extra (Optional[Dict[str, Any]]): Fields added to every point.
    on_point (Optional[Callable[[Dict[str, Any]], None]]): Called with each
        point as it is made.
    """

    def __init__(
        self,
        mode: str,
        loop: AnnotationLoop,
        test: List[Example],
        budget: float,
        every: float,
        batch_size: int,
        texts_per_update: int = 1,
        extra: Optional[Dict[str, Any]] = None,
        on_point: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> None:
        self.mode = mode
        self.loop = loop
        self.test = test
        self.budget = budget
        self.every = every
        self.batch_size = batch_size
        self.texts_per_update = texts_per_update
        self.seconds = 0.0
        self.next_eval = min(every, budget)
        self.pending: List[Task] = []
        self.counts: Counter = Counter()
        self.points: List[Dict[str, Any]] = []
        self.extra = dict(extra or {})
        self.on_point = on_point
        self.begin = time.perf_counter()

    def charge(self, seconds: float, limit: Optional[float] = None) -> bool:
        """Take the time for an action of `seconds`, evaluating first at the
        evaluation times it would pass.

        seconds (float): The action's cost.
        limit (Optional[float]): The time the action must end by; None: the budget.
        RETURNS (bool): Whether it fits (if not, the clock did not move).
        """
        end = self.seconds + seconds
        while self.points_due(end):
            self.evaluate()
        if end > (self.budget if limit is None else limit):
            return False
        self.seconds = end
        return True

    def points_due(self, end: float) -> bool:
        last = self.points[-1]["seconds"] if self.points else 0.0
        return self.next_eval < end and self.next_eval > last

    def add(self, task: Task) -> None:
        """An answer or corrected text to learn from; learned in batches."""
        self.pending.append(task)
        if len(self.pending) >= (self.texts_per_update if task.get("complete") else self.batch_size):
            self.learn()

    def learn(self) -> None:
        if self.pending:
            self.counts["updates"] += 1
            self.loop.update(self.pending)
            self.pending = []

    def evaluate(self) -> None:
        """Learn what is pending and evaluate at the next evaluation time."""
        self.learn()
        with self.loop.averaged_params():
            scores = self.loop.nlp.evaluate(self.test)
        at = self.next_eval
        self.points.append(
            {
                "mode": self.mode,
                "minutes": round(at / 60, 2),
                "seconds": round(at, 1),
                "decisions": self.counts["decisions"],
                "texts": self.counts["texts"],
                "edits": self.counts["edits"],
                "texts_answered_then_corrected": self.counts["silver texts"],
                "accepts": self.loop.answer_counts["accept"],
                "rejects": self.loop.answer_counts["reject"],
                "f": scores["ents_f"],
                "p": scores["ents_p"],
                "r": scores["ents_r"],
                "f_per_label": {k: round(v["f"], 4) for k, v in sorted((scores.get("ents_per_type") or {}).items())},
                "updates": self.counts["updates"],
                "wall_seconds": round(time.perf_counter() - self.begin, 1),
                **self.extra,
            }
        )
        if self.on_point is not None:
            self.on_point(self.points[-1])
        self.next_eval = min(self.next_eval + self.every, self.budget)

    def finish(self) -> List[Dict[str, Any]]:
        """Evaluate at the remaining evaluation times, up to the budget."""
        while not self.points or self.points[-1]["seconds"] < round(self.budget, 1):
            self.evaluate()
        return self.points


def teach_phase(
    run: TimedRun, questions: Iterator[Task], gold: Dict[int, set], cost: CostModel, until: Optional[float] = None
) -> Dict[Any, List[Task]]:
    """Binary questions answered by the oracle until the time `until` (None:
    the budget). RETURNS (Dict[Any, List[Task]]): The answers by input hash,
    texts in the order first asked."""
    answered: Dict[Any, List[Task]] = {}
    for task in questions:
        if not run.charge(cost.seconds_per_decision, until):
            break
        task["answer"] = oracle(task, gold)
        run.add(task)
        run.counts["decisions"] += 1
        answered.setdefault(task["_input_hash"], []).append(task)
    return answered


def correct_phase(
    run: TimedRun,
    texts: Iterable[Task],
    gold: Dict[int, set],
    cost: CostModel,
    answers: Optional[Dict[Any, List[Task]]] = None,
) -> bool:
    """Texts pre-highlighted by the model (with `answers`: the best analysis
    consistent with each text's answers), corrected to gold by the oracle and
    learned as complete annotations, until the budget is spent.

    RETURNS (bool): Whether the budget was spent (False: the texts ran out).
    """
    loop, nlp = run.loop, run.loop.nlp
    labels = list(loop.pipe.labels)
    texts = iter(texts)
    while True:
        chunk = [TaskText.from_task(nlp, task) for task in islice(texts, run.texts_per_update)]
        if not chunk:
            return False
        with loop.averaged_params():
            docs = list(nlp.pipe([text.doc for text in chunk]))
        for text, doc in zip(chunk, docs):
            key = text.task["_input_hash"]
            if answers is not None:
                parsed = [parse_answer(task) for task in answers[key]]
                shown = best_consistent(doc, parsed, labels, nlp=nlp)
            else:
                shown = [ent for ent in doc.ents if ent.label_ in labels]
            truth = sorted(gold[key])
            edits = count_edits([(e.start_char, e.end_char, e.label_) for e in shown], truth)
            if not run.charge(cost.correction(edits)):
                return True
            run.add(corrected_record(text.task, truth))
            run.counts["texts"] += 1
            run.counts["edits"] += edits.total
            run.counts["silver texts"] += answers is not None


def corrected_record(task: Task, spans: Sequence[tuple]) -> Task:
    """The oracle's correction of a text: its gold spans as a complete
    annotation (complete for every label: the simulator annotates them all)."""
    record = {k: v for k, v in task.items() if k in ("text", "tokens", "_input_hash")}
    record["spans"] = [{"start": s, "end": e, "label": label} for s, e, label in spans]
    record.update(answer="accept", complete=True, meta={"source": "correct"})
    return set_hashes(record)


def run_mode(
    mode: str,
    pool: Sequence[dict],
    test: Sequence[dict],
    labels: Sequence[str],
    args: argparse.Namespace,
    patterns: Optional[List[dict]] = None,
    on_point: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Run one mode for the whole budget of simulated time; `on_point` is
    called with each curve point as it is made.

    RETURNS (List[Dict[str, Any]]): One curve point per evaluation.
    """
    nlp, loop = build_loop(args.strategies[0], pool, labels, args, patterns if mode != "correct" else None)
    test_examples = records_to_examples(nlp, test, complete=True)
    budget, every = args.minutes * 60, args.eval_minutes * 60
    extra = {"strategy": args.strategies[0], "switch_minutes": args.switch_minutes if mode == MODES[2] else None}
    run = TimedRun(
        mode, loop, test_examples, budget, every, args.batch_size, args.texts_per_update, extra=extra, on_point=on_point
    )
    cost = CostModel(args.seconds_per_decision, args.seconds_per_text, args.seconds_per_edit)
    gold = gold_index(pool)
    # Teach reads the pool at most TEACH_PASSES times: a small pool runs out of questions (all asked before)
    # and would otherwise be scored forever.
    stream = islice(pool_stream(pool, args.seed), TEACH_PASSES * len(pool))
    if mode == "teach":
        teach_phase(run, loop(stream), gold, cost)
    elif mode == "correct":
        correct_phase(run, unique_texts(pool, args.seed), gold, cost)
    else:
        answered = teach_phase(run, loop(stream), gold, cost, until=args.switch_minutes * 60)
        run.learn()
        by_hash = {task["_input_hash"]: task for task in unique_texts(pool, args.seed)}
        spent = correct_phase(run, (by_hash[key] for key in answered), gold, cost, answers=answered)
        if not spent:
            fresh = (task for task in unique_texts(pool, args.seed) if task["_input_hash"] not in answered)
            correct_phase(run, fresh, gold, cost)
    return run.finish()


def unique_texts(pool: Sequence[dict], seed: int) -> Iterator[Task]:
    """One pass over the pool in `simulate`'s order, each text once."""
    seen = set()
    for task in islice(pool_stream(pool, seed), len(pool)):
        if task["_input_hash"] not in seen:
            seen.add(task["_input_hash"])
            yield task


def table(points: Sequence[Dict[str, Any]], minutes: Sequence[float]) -> str:
    """A markdown table: test F1 per mode (rows) at the given simulated minutes
    (the last evaluation at or before each), with what was annotated by then."""
    modes = list(dict.fromkeys(p["mode"] for p in points))
    head = " | ".join(f"F1 at {m:g} min | decisions / texts at {m:g} min" for m in minutes)
    lines = [f"| mode | {head} |", "|---|" + "---|---|" * len(minutes)]
    for mode in modes:
        cells = []
        for m in minutes:
            before = [p for p in points if p["mode"] == mode and p["minutes"] <= m + 1e-9]
            point = before[-1] if before else None
            cells.append(f"{point['f']:.3f}" if point and point["f"] is not None else "")
            cells.append(f"{point['decisions']} / {point['texts']}" if point else "")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `simulate` flags of the timed modes and the cost model."""
    p.add_argument(
        "--mode",
        default="teach",
        help=f"comma list of {', '.join(MODES)}; a mode other than teach, or --minutes, runs against simulated "
        "annotator time",
    )
    p.add_argument("--minutes", type=float, default=None, help="budget of simulated annotator minutes (default 120)")
    p.add_argument("--eval-minutes", type=float, default=10.0, help="simulated minutes between evaluations")
    p.add_argument(
        "--switch-minutes",
        type=float,
        default=None,
        help="teach-then-correct: simulated minutes of teach before correcting (default: half of --minutes)",
    )
    defaults = CostModel()
    p.add_argument("--seconds-per-decision", type=float, default=defaults.seconds_per_decision)
    p.add_argument("--seconds-per-text", type=float, default=defaults.seconds_per_text)
    p.add_argument("--seconds-per-edit", type=float, default=defaults.seconds_per_edit)
    p.add_argument(
        "--texts-per-update",
        type=int,
        default=1,
        help="corrected texts per update (default 1: a person correcting sends a text every few seconds, and "
        "the teach server's engine learns what has arrived whenever it is free)",
    )


def check_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the timed flags (exit 2 with one line); sets `args.modes` and
    `args.timed`, and the defaults that depend on other flags."""
    args.modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or not args.modes:
        p.error(f"argument --mode: unknown mode {bad}: use a comma list of {', '.join(MODES)}")
    args.timed = args.minutes is not None or args.modes != ["teach"]
    if not args.timed:
        return
    if args.minutes is None:
        args.minutes = 120.0
    if args.switch_minutes is None:
        args.switch_minutes = args.minutes / 2
    if args.texts_per_update < 1:
        p.error(f"argument --texts-per-update: must be positive, not {args.texts_per_update}")
    for name in ("minutes", "eval_minutes", "seconds_per_text"):
        if not getattr(args, name) > 0:
            p.error(f"argument --{name.replace('_', '-')}: must be positive, not {getattr(args, name)}")
    for name in ("switch_minutes", "seconds_per_decision", "seconds_per_edit"):
        if not getattr(args, name) >= 0:
            p.error(f"argument --{name.replace('_', '-')}: must be 0 or more, not {getattr(args, name)}")
    if len(args.strategies) != 1 or args.strategies[0] == "beam_ner":
        p.error("argument --strategy: the timed modes take one binary_ner sorter (uncertainty, random or confident)")


def run_timed(
    args: argparse.Namespace,
    pool: Sequence[dict],
    test: Sequence[dict],
    labels: Sequence[str],
    patterns: Optional[List[dict]],
) -> int:
    """`simulate` in the timed modes: writes `curve.jsonl` and `curve.png`
    (test F1 against simulated minutes, one line per mode) under `args.output`."""
    args.output.mkdir(parents=True, exist_ok=True)
    curve_path = args.output / "curve.jsonl"
    everything: List[Dict[str, Any]] = []
    with curve_path.open("w", encoding="utf8") as out:

        def write(point: Dict[str, Any]) -> None:
            # Each point as it is made: a long run that is stopped keeps its curve so far.
            row = {**point, "seed": args.seed, "batch_size": args.batch_size, "texts_per_update": args.texts_per_update}
            out.write(json.dumps(nan_to_null({**row, **cost_fields(args)}), allow_nan=False) + "\n")
            out.flush()
            print(f"{point['mode']}: {point['minutes']:g} min, F1 {point['f']:.3f}", file=sys.stderr)

        for mode in args.modes:
            everything.extend(run_mode(mode, pool, test, labels, args, patterns, on_point=write))
    title = f"{Path(args.pool).parent.name or Path(args.pool).name}: seed {args.seed}, {cost_title(args)}"
    plotted = plot(everything, args.output / "curve.png", title, x="minutes", xlabel=TIME_AXIS, series="mode")
    print(table(everything, sorted({args.eval_minutes, args.minutes})))
    print(f"wrote {curve_path}" + (f" and {args.output / 'curve.png'}" if plotted else ""))
    return 0


TIME_AXIS = "simulated annotator minutes"


def cost_fields(args: argparse.Namespace) -> Dict[str, float]:
    """The cost model's constants, as written into each point."""
    return {
        "seconds_per_decision": args.seconds_per_decision,
        "seconds_per_text": args.seconds_per_text,
        "seconds_per_edit": args.seconds_per_edit,
    }


def cost_title(args: argparse.Namespace) -> str:
    return (
        f"{args.seconds_per_decision:g} s/decision, {args.seconds_per_text:g} s/text + {args.seconds_per_edit:g} s/edit"
    )
