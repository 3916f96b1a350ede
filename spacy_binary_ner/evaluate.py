"""`python -m spacy_binary_ner evaluate`: how good a trained `binary_ner`
pipeline is, on complete annotations and on held-out binary answers.

    python -m spacy_binary_ner evaluate training/model-best --gold gold.jsonl \\
        --answers held_out_answers.jsonl --output metrics/

writes `evaluation.json`, `evaluation.md` and `reliability.png` to the output
folder and prints the Markdown:

- per label precision, recall and F1 of `doc.ents` on the gold set (exact span
  and label; JSONL of complete annotations, or a `.spacy` DocBin of them);
- on held-out teach answers: does the model predict the span-label exactly
  (`doc.ents`) when it was accepted, and not when it was rejected;
- calibration of the span probabilities (`doc.spans[scores_key]`,
  `.attrs["scores"]`): a reliability diagram, expected calibration error and
  Brier score, against the gold set (every candidate span and label) and against
  the held-out answers.
"""

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from .cli_args import ArgumentParser, fail, input_error, output_folder_error, pipeline_error
from .data import TeachDataError, TeachReader
from .evaluate_report import format_markdown, plot_reliability
from .pipeline import BinaryNER, find_binary_ner
from .readstats import ReadStats
from .records import (
    RecordError,
    align_span,
    iter_lines,
    jsonl_files,
    nan_to_null,
    parse_record,
    parse_tokens,
    record_doc,
)

SpanKey = Tuple[int, int, str]  # token start, token end (exclusive), label


def read_gold(nlp: Language, path: Union[str, Path]) -> Tuple[List[Example], Dict[str, Any]]:
    """Read complete annotations: JSONL (teach format, every entity marked) or a
    `.spacy` DocBin whose docs have entity annotation.

    nlp (Language): The pipeline; its tokenizer splits records without `tokens`.
    path (Union[str, Path]): The file (or a folder of JSONL files).
    RETURNS (Tuple[List[Example], Dict[str, Any]]): Examples whose reference holds
        the gold entities, and the account of what was read.
    """
    path = Path(path)
    if path.suffix == ".spacy":
        if not path.exists():
            raise FileNotFoundError(f"No such file: '{path}'")
        examples = []
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
            examples.append(Example(_blank_copy(doc), doc))
        return examples, {"path": str(path), "format": "spacy", "docs": len(examples)}
    reader = TeachReader(nlp)
    reader.read_path(path, complete=True)
    examples = reader.examples()
    return examples, {"path": str(path), "format": "jsonl", "docs": len(examples), **reader.total().to_dict()}


def _blank_copy(doc: Doc) -> Doc:
    return Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


class Question:
    """One held-out binary answer about one span and label."""

    __slots__ = ("doc_index", "start", "end", "label", "accept", "record")

    def __init__(self, doc_index: int, start: int, end: int, label: str, accept: bool, record: str) -> None:
        self.doc_index = doc_index
        self.start = start
        self.end = end
        self.label = label
        self.accept = accept
        self.record = record


def read_answers(nlp: Language, path: Union[str, Path]) -> Tuple[List[Doc], List[Question], Dict[str, Any]]:
    """Read held-out teach answers, one question per span of each accept or
    reject record. Records that cannot be evaluated are counted by reason
    (the reasons of `spacy_binary_ner.records.REASONS`).

    nlp (Language): The pipeline; its tokenizer splits records without `tokens`.
    path (Union[str, Path]): JSONL file (plain or .gz) or folder of them.
    RETURNS (Tuple[List[Doc], List[Question], Dict[str, Any]]): The distinct
        sentences (unannotated docs), the questions about them, and the account.
    """
    docs: List[Doc] = []
    doc_ids: Dict[Tuple[str, Optional[Tuple[Tuple[str, int, int], ...]]], int] = {}
    questions: List[Question] = []
    skipped: Counter = Counter()
    examples_of_skips: Dict[str, str] = {}
    n_records = 0
    for file in jsonl_files(path):
        for line_no, value in iter_lines(file):
            n_records += 1
            place = f"{file}:{line_no}"
            reason = _add_answer(nlp, value, place, docs, doc_ids, questions)
            if reason is not None:
                skipped[reason] += 1
                examples_of_skips.setdefault(reason, place)
    labels = ReadStats(labels=Counter(q.label for q in questions))
    account = {
        "path": str(path),
        "records": n_records,
        "questions": len(questions),
        "sentences": len(docs),
        "skipped": dict(sorted(skipped.items())),
        "first_skipped": examples_of_skips,
        "labels": dict(sorted(labels.labels.items())),
        "labels_differing_in_case": labels.labels_differing_in_case,
    }
    return docs, questions, account


def _add_answer(
    nlp: Language,
    value: Any,
    place: str,
    docs: List[Doc],
    doc_ids: Dict[Any, int],
    questions: List[Question],
) -> Optional[str]:
    """Add the record's questions; RETURNS the reason it was skipped, or None."""
    try:
        record = parse_record(value)
        tokens = record.parsed_tokens
        if tokens is None and record.tokens:
            tokens = parse_tokens(record.tokens, record.text)
    except RecordError as err:
        return err.reason
    key = (record.text, None if tokens is None else tuple(zip(tokens.words, tokens.starts, tokens.ends)))
    if key not in doc_ids:
        doc_ids[key] = len(docs)
        docs.append(record_doc(nlp, record.text, tokens)[0])
    doc_index = doc_ids[key]
    doc = docs[doc_index]
    starts = [t.idx for t in doc]
    ends = [t.idx + len(t) for t in doc]
    if tokens is not None:
        starts, ends = tokens.starts, tokens.ends
    new: List[Question] = []
    for start, end, label in record.spans:
        span = align_span(starts, ends, start, end, "strict")
        if span is None:
            return "misaligned span"
        new.append(Question(doc_index, span[0], span[1], label, record.answer == "accept", place))
    questions.extend(new)
    return None


def _predict(nlp: Language, docs: Iterable[Doc], batch_size: int) -> List[Doc]:
    return list(nlp.pipe(docs, batch_size=batch_size))


def _span_probs(doc: Doc, key: str) -> Dict[SpanKey, float]:
    group = doc.spans[key] if key in doc.spans else []
    scores = group.attrs.get("scores", []) if len(group) else []
    return {(s.start, s.end, s.label_): float(p) for s, p in zip(group, scores)}


def prf(tp: int, n_pred: int, n_gold: int) -> Dict[str, float]:
    """Precision, recall and F1 from counts (0.0 where undefined)."""
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f": f, "tp": tp, "predicted": n_pred, "gold": n_gold}


def score_gold(
    nlp: Language, examples: Sequence[Example], scores_key: str, max_span_length: int, batch_size: int = 64
) -> Tuple[Dict[str, Any], numpy.ndarray, numpy.ndarray]:
    """Per-label P/R/F of `doc.ents` against the references, and the span
    probabilities of every candidate with whether it is a gold entity.

    Predicted entities on tokens whose gold annotation is missing are not
    counted (as in spaCy's scorer) but reported.

    RETURNS (Tuple[Dict[str, Any], numpy.ndarray, numpy.ndarray]): The scores,
        and the probabilities and outcomes (1.0 for a gold entity) for calibration.
    """
    predicted = _predict(nlp, (_blank_copy(eg.reference) for eg in examples), batch_size)
    counts: Dict[str, Counter] = defaultdict(Counter)
    probs: List[float] = []
    outcomes: List[float] = []
    on_missing = 0
    too_long = 0
    for eg, doc in zip(examples, predicted):
        ref = eg.reference
        missing = numpy.array([t.ent_iob == 0 for t in ref], dtype=bool)
        gold = {(e.start, e.end, e.label_) for e in ref.ents}
        pred = set()
        for e in doc.ents:
            if missing[e.start : e.end].any():
                on_missing += 1
            else:
                pred.add((e.start, e.end, e.label_))
        for _, _, label in gold:
            counts[label]["gold"] += 1
        for _, _, label in pred:
            counts[label]["predicted"] += 1
        for _, _, label in gold & pred:
            counts[label]["tp"] += 1
        span_probs = _span_probs(doc, scores_key)
        for (start, end, label), p in span_probs.items():
            if not missing[start:end].any():
                probs.append(p)
                outcomes.append(1.0 if (start, end, label) in gold else 0.0)
        too_long += sum(1 for s, e, _ in gold if e - s > max_span_length)
    per_label = {label: prf(c["tp"], c["predicted"], c["gold"]) for label, c in sorted(counts.items())}
    total = Counter()
    for c in counts.values():
        total.update(c)
    result = {
        "docs": len(examples),
        "micro": prf(total["tp"], total["predicted"], total["gold"]),
        "per_label": per_label,
        "predicted_on_missing_annotation": on_missing,
        "gold_longer_than_max_span_length": too_long,
    }
    return result, numpy.asarray(probs, dtype="f"), numpy.asarray(outcomes, dtype="f")


def score_answers(
    nlp: Language, docs: Sequence[Doc], questions: Sequence[Question], scores_key: str, batch_size: int = 64
) -> Tuple[Dict[str, Any], numpy.ndarray, numpy.ndarray]:
    """Agreement of `doc.ents` with held-out binary answers: an accepted
    span-label should be an entity, exactly; a rejected one should not.

    RETURNS (Tuple[Dict[str, Any], numpy.ndarray, numpy.ndarray]): The scores,
        and the model's probability of each asked span-label with its answer
        (1.0 accept) for calibration.
    """
    predicted = _predict(nlp, (d.copy() for d in docs), batch_size)
    ents = [{(e.start, e.end, e.label_) for e in doc.ents} for doc in predicted]
    span_probs = [_span_probs(doc, scores_key) for doc in predicted]
    counts: Dict[str, Counter] = defaultdict(Counter)
    probs = numpy.zeros(len(questions), dtype="f")
    outcomes = numpy.zeros(len(questions), dtype="f")
    for i, q in enumerate(questions):
        key = (q.start, q.end, q.label)
        says_entity = key in ents[q.doc_index]
        probs[i] = span_probs[q.doc_index].get(key, 0.0)
        outcomes[i] = 1.0 if q.accept else 0.0
        kind = "accept" if q.accept else "reject"
        for group in ("all", kind, f"{q.label}"):
            counts[group]["n"] += 1
            counts[group]["correct"] += int(says_entity == q.accept)

    def rate(c: Counter) -> Dict[str, Any]:
        return {"n": c["n"], "correct": c["correct"], "accuracy": c["correct"] / c["n"] if c["n"] else 0.0}

    result = {
        "questions": len(questions),
        "accuracy": rate(counts["all"])["accuracy"],
        "accept": rate(counts["accept"]),
        "reject": rate(counts["reject"]),
        "per_label": {
            label: rate(c) for label, c in sorted(counts.items()) if label not in ("all", "accept", "reject")
        },
    }
    return result, probs, outcomes


def reliability(probs: numpy.ndarray, outcomes: numpy.ndarray, n_bins: int = 10) -> Dict[str, Any]:
    """Reliability bins, expected calibration error and Brier score.

    probs (numpy.ndarray): Predicted probabilities.
    outcomes (numpy.ndarray): 1.0 where the event happened, else 0.0.
    n_bins (int): Equal-width probability bins.
    RETURNS (Dict[str, Any]): `bins` (lower, upper, n, mean probability, observed
        frequency), `ece` (count-weighted mean |observed - predicted|) and `brier`.
    """
    edges = numpy.linspace(0.0, 1.0, n_bins + 1)
    # The last bin includes 1.0.
    index = numpy.clip(numpy.searchsorted(edges, probs, side="right") - 1, 0, n_bins - 1)
    bins = []
    ece = 0.0
    n = len(probs)
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        mean_p = float(probs[mask].mean()) if count else None
        freq = float(outcomes[mask].mean()) if count else None
        if count:
            ece += count / n * abs(freq - mean_p)
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "n": count,
                "mean_probability": mean_p,
                "observed": freq,
            }
        )
    brier = float(((probs - outcomes) ** 2).mean()) if n else None
    return {"n": n, "positives": int(outcomes.sum()), "ece": ece if n else None, "brier": brier, "bins": bins}


def evaluate(
    model: Union[str, Path, Language],
    gold: Optional[Union[str, Path]] = None,
    answers: Optional[Union[str, Path]] = None,
    output: Optional[Union[str, Path]] = None,
    *,
    min_prob: float = 0.0,
    n_bins: int = 10,
    batch_size: int = 64,
    displacy_path: Optional[Union[str, Path]] = None,
    displacy_limit: int = 25,
) -> Dict[str, Any]:
    """Evaluate a trained pipeline on gold annotations and/or held-out answers.

    model (Union[str, Path, Language]): Pipeline folder or package name, or the pipeline.
    gold (Optional[Union[str, Path]]): Complete annotations (.jsonl or .spacy).
    answers (Optional[Union[str, Path]]): Held-out teach answers (.jsonl).
    output (Optional[Union[str, Path]]): Folder for evaluation.json, evaluation.md
        and reliability.png; None writes nothing.
    min_prob (float): Smallest span probability kept for calibration (the pipe's
        `candidates_threshold` is set to it while evaluating; 0.0 keeps every span).
    n_bins (int): Bins of the reliability diagram.
    batch_size (int): Docs per batch when predicting.
    displacy_path (Optional[Union[str, Path]]): Folder for `entities.html`,
        displaCy's rendering of the predicted entities of the first
        `displacy_limit` gold docs (or answered texts), as `spacy evaluate
        --displacy-path` writes it. None writes nothing.
    displacy_limit (int): Docs rendered.
    RETURNS (Dict[str, Any]): The report.
    """
    if gold is None and answers is None:
        raise ValueError("Nothing to evaluate on: give gold annotations (--gold), held-out answers (--answers) or both")
    nlp = model if isinstance(model, Language) else spacy.load(model)
    name, pipe = find_binary_ner(nlp)
    n_pipes = sum(isinstance(proc, BinaryNER) for _, proc in nlp.pipeline)
    if n_pipes > 1:
        raise ValueError(f"The pipeline has {n_pipes} binary_ner components; evaluate one pipeline per component")
    saved = dict(pipe.cfg)
    pipe.cfg["candidates_threshold"] = min_prob
    scores_key = pipe.cfg.get("scores_key") or "binary_ner_scores"
    pipe.cfg["scores_key"] = scores_key
    report: Dict[str, Any] = {
        "model": str(model) if not isinstance(model, Language) else f"<{nlp.meta.get('name', 'pipeline')}>",
        "component": name,
        "labels": list(pipe.labels),
        "threshold": pipe.cfg["threshold"],
        "min_prob": min_prob,
    }
    curves: Dict[str, Dict[str, Any]] = {}
    shown: List[Doc] = []
    try:
        if gold is not None:
            examples, account = read_gold(nlp, gold)
            shown = [_blank_copy(eg.reference) for eg in examples[:displacy_limit]]
            scores, probs, outcomes = score_gold(nlp, examples, scores_key, pipe.max_span_length, batch_size)
            report["gold"] = {"account": account, **scores}
            curves["gold candidates"] = reliability(probs, outcomes, n_bins)
        if answers is not None:
            docs, questions, account = read_answers(nlp, answers)
            shown = shown or [_blank_copy(doc) for doc in docs[:displacy_limit]]
            scores, probs, outcomes = score_answers(nlp, docs, questions, scores_key, batch_size)
            report["answers"] = {"account": account, **scores}
            curves["held-out answers"] = reliability(probs, outcomes, n_bins)
    finally:
        pipe.cfg.clear()
        pipe.cfg.update(saved)
    report["calibration"] = curves
    if displacy_path is not None:
        report["displacy"] = str(render_entities(nlp, shown, displacy_path, report["model"], batch_size))
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        figure = output / "reliability.png"
        why_not = plot_reliability(curves, figure, f"Span probabilities: {report['model']}")
        report["figure"] = None if why_not else figure.name
        if why_not:
            report["figure_missing"] = why_not
        (output / "evaluation.json").write_text(
            json.dumps(nan_to_null(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf8"
        )
        (output / "evaluation.md").write_text(format_markdown(report), encoding="utf8")
    return report


def render_entities(
    nlp: Language, docs: Sequence[Doc], path: Union[str, Path], title: str, batch_size: int = 64
) -> Path:
    """Predict `docs` and write displaCy's page of their entities.

    nlp (Language): The pipeline.
    docs (Sequence[Doc]): Unannotated docs.
    path (Union[str, Path]): Folder; created if needed.
    title (str): The page title.
    batch_size (int): Docs per batch.
    RETURNS (Path): The `entities.html` written.
    """
    from spacy import displacy

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    predicted = _predict(nlp, docs, batch_size)
    html = displacy.render(predicted, style="ent", page=True, jupyter=False, options={"title": title})
    out = folder / "entities.html"
    out.write_text(html, encoding="utf8")
    return out


def main(argv: List[str]) -> int:
    """Run the evaluation. RETURNS (int): The exit status."""
    p = ArgumentParser(
        prog="python -m spacy_binary_ner evaluate",
        description="Evaluate a trained binary_ner pipeline: per-label P/R/F on complete annotations, agreement "
        "with held-out accept/reject answers, and a reliability diagram of the span probabilities. Writes "
        "evaluation.json, evaluation.md and reliability.png to --output and prints the Markdown.",
    )
    p.add_argument("model", help="trained pipeline folder (e.g. training/model-best) or installed package name")
    p.add_argument("--gold", default=None, help="complete annotations: .jsonl (every entity marked) or .spacy")
    p.add_argument("--answers", default=None, help="held-out teach answers (.jsonl), accept/reject")
    p.add_argument("--output", type=Path, default=None, help="folder for evaluation.json, .md and reliability.png")
    p.add_argument(
        "--min-prob",
        type=float,
        default=0.0,
        help="smallest span probability kept for calibration (default 0: every span)",
    )
    p.add_argument("--bins", dest="n_bins", type=int, default=10, help="bins of the reliability diagram (default 10)")
    p.add_argument("--gpu-id", type=int, default=-1, help="GPU to predict on (default -1: CPU)")
    p.add_argument("--displacy-path", type=Path, help="folder for entities.html: the predictions drawn by displaCy")
    p.add_argument("--displacy-limit", type=int, default=25, help="docs rendered (default 25)")
    args = p.parse_args(argv)
    if args.gold is None and args.answers is None:
        p.error("give --gold, --answers or both")
    if not 0.0 <= args.min_prob < 1.0:
        p.error(f"--min-prob must be in [0, 1), not {args.min_prob}")
    if args.n_bins < 1:
        p.error(f"--bins must be at least 1, not {args.n_bins}")
    if args.displacy_limit < 1:
        p.error(f"argument --displacy-limit: must be at least 1, not {args.displacy_limit}")
    fail(p, pipeline_error(args.model, "model"))
    for name in ("gold", "answers"):
        if getattr(args, name) is not None:
            fail(p, input_error(getattr(args, name), f"--{name}"))
    for name in ("output", "displacy_path"):
        if getattr(args, name) is not None:
            fail(p, output_folder_error(getattr(args, name), "--" + name.replace("_", "-")))
    options = vars(args)
    gpu_id = options.pop("gpu_id")
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        report = evaluate(**options)  # the flags are named as its arguments
    except (TeachDataError, FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_markdown(report))
    if args.output is not None:
        print(
            "Wrote evaluation.json, evaluation.md"
            + (" and reliability.png" if report.get("figure") else "")
            + f" to {args.output}"
        )
    if args.displacy_path is not None:
        print(f"Wrote {report['displacy']}")
    return 0


__all__ = [
    "evaluate",
    "find_binary_ner",
    "format_markdown",
    "main",
    "read_answers",
    "read_gold",
    "reliability",
    "render_entities",
    "score_answers",
    "score_gold",
]
