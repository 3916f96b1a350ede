"""How far annotators agree: binary answers per label, corrections per text.

Binary answers (one span and label, accept or reject) are compared by task
(`_task_hash`): per label, the percent agreement (the mean, over tasks, of the
share of agreeing pairs of sessions), Fleiss' kappa over all sessions (with
any number of answers per task, 2 or more) and Cohen's kappa for each pair of
sessions with tasks in common. A kappa is None where chance agreement is 1
(every answer the same: nothing to tell agreement from chance), with the
reason in `notes`. Corrections (`"complete"` records) are compared by text
(`_input_hash`): span F1 between each pair of sessions, per label and over
all labels. Each figure comes with the number of tasks or texts it rests on.
Ignored answers take no part; a session's later answer to a task replaces its
earlier one.
"""

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# (session, task dict) as stored: the task holds `answer`, `spans`, hashes.
SessionAnswer = Tuple[str, Mapping[str, Any]]


@dataclass
class LabelAgreement:
    """The agreement on one label's binary answers.

    tasks (int): Tasks with answers of two or more sessions.
    answers (int): Their answers.
    percent (Optional[float]): Mean share of agreeing pairs per task.
    fleiss (Optional[float]): Fleiss' kappa over those tasks.
    cohen (Dict[str, Optional[float]]): Cohen's kappa per pair of sessions
        ("a|b"), over the tasks both answered.
    cohen_tasks (Dict[str, int]): The number of tasks each of those rests on.
    notes (List[str]): Why a figure is None.
    """

    tasks: int = 0
    answers: int = 0
    percent: Optional[float] = None
    fleiss: Optional[float] = None
    cohen: Dict[str, Optional[float]] = field(default_factory=dict)
    cohen_tasks: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


@dataclass
class CorrectionAgreement:
    """Span F1 between the corrections of each pair of sessions.

    texts (Dict[str, int]): Texts both sessions corrected, per pair ("a|b").
    f1 (Dict[str, Optional[float]]): Span F1 over all labels, per pair (None
        where neither marked a span).
    by_label (Dict[str, Dict[str, Optional[float]]]): Per label, per pair.
    """

    texts: Dict[str, int] = field(default_factory=dict)
    f1: Dict[str, Optional[float]] = field(default_factory=dict)
    by_label: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)


def fleiss_kappa(counts: Sequence[Mapping[str, int]]) -> Tuple[Optional[float], Optional[str]]:
    """Fleiss' kappa of items rated by two or more raters each (the number of
    raters may differ between items).

    counts (Sequence[Mapping[str, int]]): Per item, how many raters gave each
        category.
    RETURNS (Tuple[Optional[float], Optional[str]]): The kappa, or None and why.
    """
    items = [c for c in counts if sum(c.values()) >= 2]
    if not items:
        return None, "no task has two answers"
    observed = sum(_pair_agreement(c) for c in items) / len(items)
    totals: Counter = Counter()
    for c in items:
        totals.update(c)
    n = sum(totals.values())
    chance = sum((v / n) ** 2 for v in totals.values())
    if chance >= 1.0:
        return None, "chance agreement is 1: every answer is the same"
    return (observed - chance) / (1.0 - chance), None


def cohen_kappa(pairs: Sequence[Tuple[str, str]]) -> Tuple[Optional[float], Optional[str]]:
    """Cohen's kappa of two raters.

    pairs (Sequence[Tuple[str, str]]): Per item, the two raters' categories.
    RETURNS (Tuple[Optional[float], Optional[str]]): The kappa, or None and why.
    """
    if not pairs:
        return None, "no task in common"
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(first[k] * second[k] for k in first) / (n * n)
    if chance >= 1.0:
        return None, "chance agreement is 1: every answer is the same"
    return (observed - chance) / (1.0 - chance), None


def binary_agreement(answers: Iterable[SessionAnswer]) -> Dict[str, LabelAgreement]:
    """Agreement on binary answers, per label.

    answers (Iterable[SessionAnswer]): (session, task) in the order given
        (a session's later answer to a task wins); corrections and ignores
        are left out.
    RETURNS (Dict[str, LabelAgreement]): Per label, sorted.
    """
    by_task: Dict[Any, Dict[str, str]] = defaultdict(dict)
    label_of: Dict[Any, str] = {}
    for session, task in answers:
        answer = task.get("answer")
        if task.get("complete") not in (None, False) or answer not in ("accept", "reject"):
            if answer == "ignore":
                by_task.get(_task_key(task), {}).pop(session, None)
            continue
        key = _task_key(task)
        label_of[key] = _task_label(task)
        by_task[key][session] = answer
    result: Dict[str, LabelAgreement] = {}
    for label in sorted(set(label_of.values())):
        tasks = {k: v for k, v in by_task.items() if label_of[k] == label and len(v) >= 2}
        figures = LabelAgreement(tasks=len(tasks), answers=sum(len(v) for v in tasks.values()))
        counts = [Counter(v.values()) for v in tasks.values()]
        if counts:
            figures.percent = sum(_pair_agreement(c) for c in counts) / len(counts)
        figures.fleiss, why = fleiss_kappa(counts)
        if why:
            figures.notes.append(f"fleiss: {why}")
        sessions = sorted({s for v in tasks.values() for s in v})
        for a, b in itertools.combinations(sessions, 2):
            pairs = [(v[a], v[b]) for v in tasks.values() if a in v and b in v]
            if not pairs:
                continue
            name = f"{a}|{b}"
            figures.cohen[name], why = cohen_kappa(pairs)
            figures.cohen_tasks[name] = len(pairs)
            if why:
                figures.notes.append(f"cohen {name}: {why}")
        result[label] = figures
    return result


def correction_agreement(answers: Iterable[SessionAnswer]) -> CorrectionAgreement:
    """Span F1 between sessions' corrections of the same texts.

    answers (Iterable[SessionAnswer]): (session, task); only accepted
        complete records count (a session's later one of a text wins).
    RETURNS (CorrectionAgreement): Per pair of sessions.
    """
    by_text: Dict[Any, Dict[str, frozenset]] = defaultdict(dict)
    for session, task in answers:
        if task.get("complete") in (None, False):
            continue
        key = task.get("_input_hash", task.get("text"))
        if task.get("answer", "accept") != "accept":
            by_text.get(key, {}).pop(session, None)
            continue
        spans = task.get("spans") or []
        by_text[key][session] = frozenset((s["start"], s["end"], s["label"]) for s in spans)
    result = CorrectionAgreement()
    sessions = sorted({s for v in by_text.values() for s in v})
    labels = sorted({span[2] for v in by_text.values() for spans in v.values() for span in spans})
    for a, b in itertools.combinations(sessions, 2):
        shared = [(v[a], v[b]) for v in by_text.values() if a in v and b in v]
        if not shared:
            continue
        name = f"{a}|{b}"
        result.texts[name] = len(shared)
        result.f1[name] = _span_f1(shared)
        for label in labels:
            only = [
                (frozenset(s for s in x if s[2] == label), frozenset(s for s in y if s[2] == label)) for x, y in shared
            ]
            result.by_label.setdefault(label, {})[name] = _span_f1(only)
    return result


def agreement_report(answers: Sequence[SessionAnswer]) -> Dict[str, Any]:
    """Both figures as one JSON-ready dict: `binary` per label and `corrections`."""
    binary = binary_agreement(answers)
    corrections = correction_agreement(answers)
    return {
        "binary": {label: vars(figures) for label, figures in binary.items()},
        "corrections": vars(corrections),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a table for a terminal."""
    lines = ["binary answers (tasks with 2+ sessions): label  tasks  percent  fleiss  cohen (pairs)"]
    for label, f in report["binary"].items():
        cohen = ", ".join(f"{k} {_fmt(v)} ({f['cohen_tasks'][k]})" for k, v in f["cohen"].items()) or "-"
        lines.append(f"  {label}  {f['tasks']}  {_fmt(f['percent'])}  {_fmt(f['fleiss'])}  {cohen}")
        lines += [f"    note: {note}" for note in f["notes"]]
    if not report["binary"]:
        lines.append("  (no binary answers)")
    corrections = report["corrections"]
    lines.append("corrections (texts both sessions corrected): pair  texts  span F1  per label")
    for name, texts in corrections["texts"].items():
        per_label = ", ".join(f"{label} {_fmt(v[name])}" for label, v in corrections["by_label"].items() if name in v)
        lines.append(f"  {name}  {texts}  {_fmt(corrections['f1'][name])}  {per_label}")
    if not corrections["texts"]:
        lines.append("  (no text corrected by two sessions)")
    return "\n".join(lines)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pair_agreement(counts: Mapping[str, int]) -> float:
    """Share of agreeing pairs among the raters of one item."""
    n = sum(counts.values())
    return sum(v * (v - 1) for v in counts.values()) / (n * (n - 1))


def _span_f1(pairs: Sequence[Tuple[frozenset, frozenset]]) -> Optional[float]:
    both = sum(len(x & y) for x, y in pairs)
    marked = sum(len(x) + len(y) for x, y in pairs)
    return None if marked == 0 else 2 * both / marked


def _task_key(task: Mapping[str, Any]) -> Any:
    if "_task_hash" in task:
        return task["_task_hash"]
    spans = tuple((s.get("start"), s.get("end"), s.get("label")) for s in task.get("spans") or ())
    return (task.get("text"), spans, task.get("label"))


def _task_label(task: Mapping[str, Any]) -> str:
    spans = task.get("spans") or []
    if spans:
        return str(spans[0].get("label", ""))
    return str(task.get("label", ""))


def latest_by_session(answers: Iterable[SessionAnswer]) -> Dict[Tuple[str, Any], Dict[str, Mapping[str, Any]]]:
    """Each session's latest answer per task, grouped as the figures group
    them: binary answers by task (`("task", _task_hash)`), corrections by
    text (`("text", _input_hash)`). An ignore withdraws the session's answer
    to a task, as does anything but an accept of a text.

    answers (Iterable[SessionAnswer]): (session, task) in the order given.
    RETURNS (Dict[Tuple[str, Any], Dict[str, Mapping[str, Any]]]): Per group,
        in the order first answered, `{session: latest task}` in the order
        the sessions first answered; groups left with no answer are dropped.
    """
    groups: Dict[Tuple[str, Any], Dict[str, Mapping[str, Any]]] = {}
    for session, task in answers:
        if task.get("complete") not in (None, False):
            key: Tuple[str, Any] = ("text", task.get("_input_hash", task.get("text")))
            withdrawn = task.get("answer", "accept") != "accept"
        else:
            key = ("task", _task_key(task))
            withdrawn = task.get("answer") not in ("accept", "reject")
        if withdrawn:
            groups.get(key, {}).pop(session, None)
        else:
            groups.setdefault(key, {})[session] = task
    return {key: by_session for key, by_session in groups.items() if by_session}
