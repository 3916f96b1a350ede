"""The report of `python -m spacy_binary_ner evaluate` for people: Markdown
and a reliability diagram (see `spacy_binary_ner.evaluate` for the numbers)."""

from pathlib import Path
from typing import Any, Dict, List, Optional


def plot_reliability(curves: Dict[str, Dict[str, Any]], path: Path, title: str) -> Optional[str]:
    """Draw the reliability diagram (with matplotlib's Agg backend) to `path`.

    curves (Dict[str, Dict[str, Any]]): Name -> output of `reliability`.
    path (Path): The PNG file.
    title (str): The figure title.
    RETURNS (Optional[str]): None, or why no figure was drawn.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install 'spacy-binary-ner[plot]'"
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    markers = ["o", "s", "^", "D"]
    for k, (name, rel) in enumerate(curves.items()):
        bins = [b for b in rel["bins"] if b["n"]]
        if not bins:
            continue
        xs = [b["mean_probability"] for b in bins]
        ys = [b["observed"] for b in bins]
        ece = rel["ece"]
        top.plot(xs, ys, marker=markers[k % len(markers)], label=f"{name} (n={rel['n']}, ECE={ece:.3f})")
        centres = [(b["lower"] + b["upper"]) / 2 for b in rel["bins"]]
        width = (rel["bins"][0]["upper"] - rel["bins"][0]["lower"]) / (len(curves) + 1)
        bottom.bar(
            [c + (k - (len(curves) - 1) / 2) * width for c in centres],
            [max(b["n"], 0) for b in rel["bins"]],
            width=width,
            label=name,
        )
    top.set_ylabel("observed frequency (gold entity / accepted)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted span probability")
    bottom.set_ylabel("spans per bin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.3f}"


def format_markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown.

    report (Dict[str, Any]): Output of `evaluate`.
    RETURNS (str): The Markdown text.
    """
    lines = [f"# Evaluation of `{report['model']}`", ""]
    gold = report.get("gold")
    if gold:
        acc = gold["account"]
        read = ""
        if "records" in acc:  # JSONL: the reader's account
            read = f" from {acc['records']} records"
            if acc.get("merged"):
                read += f" ({acc['merged']} merged into the doc of the same text)"
            if acc.get("skipped_by_reason"):
                read += f"; {acc['skipped']} records skipped ({_reasons(acc['skipped_by_reason'])})"
        lines += [
            f"## Gold annotations: `{acc['path']}`",
            "",
            f"{gold['docs']} docs, {gold['micro']['gold']} entities{read}. Entities of `doc.ents` "
            f"(probability ≥ {report['threshold']}), exact span and label.",
            "",
            "| label | P | R | F1 | gold | predicted |",
            "|---|---|---|---|---|---|",
        ]
        for label, s in gold["per_label"].items():
            lines.append(f"| {label} | {s['p']:.3f} | {s['r']:.3f} | {s['f']:.3f} | {s['gold']} | {s['predicted']} |")
        m = gold["micro"]
        lines.append(
            f"| **all** | **{m['p']:.3f}** | **{m['r']:.3f}** | **{m['f']:.3f}** | {m['gold']} | {m['predicted']} |"
        )
        notes = []
        if gold["predicted_on_missing_annotation"]:
            notes.append(
                f"{gold['predicted_on_missing_annotation']} predicted entities on tokens without gold "
                "annotation were not counted (is the gold set complete?)"
            )
        if gold["gold_longer_than_max_span_length"]:
            notes.append(
                f"{gold['gold_longer_than_max_span_length']} gold entities are longer than the model's "
                "max_span_length and cannot be found"
            )
        notes += _case_notes(acc)
        if notes:
            lines += ["", *[f"- {n}" for n in notes]]
        lines.append("")
    answers = report.get("answers")
    if answers:
        acc = answers["account"]
        skipped = sum(acc["skipped"].values())
        lines += [
            f"## Held-out answers: `{acc['path']}`",
            "",
            f"{answers['questions']} questions (span and label) from {acc['records']} records"
            + (f"; {skipped} records not used ({_reasons(acc['skipped'])})" if skipped else "")
            + ". The model agrees when it predicts the span-label as an entity exactly when it was accepted.",
            "",
            "| answers | n | model agrees |",
            "|---|---|---|",
            f"| accepted (model predicts it) | {answers['accept']['n']} | {answers['accept']['accuracy']:.3f} |",
            f"| rejected (model does not predict it) | {answers['reject']['n']} | "
            f"{answers['reject']['accuracy']:.3f} |",
        ]
        for label, s in answers["per_label"].items():
            lines.append(f"| label {label} | {s['n']} | {s['accuracy']:.3f} |")
        lines += [f"| **all** | {answers['questions']} | **{answers['accuracy']:.3f}** |", ""]
        notes = _case_notes(acc)
        if notes:
            lines += [*[f"- {n}" for n in notes], ""]
    curves = report.get("calibration") or {}
    if curves:
        lines += [
            "## Calibration of span probabilities",
            "",
            "| against | spans | positives | ECE | Brier |",
            "|---|---|---|---|---|",
        ]
        for name, rel in curves.items():
            lines.append(f"| {name} | {rel['n']} | {rel['positives']} | {_pct(rel['ece'])} | {_pct(rel['brier'])} |")
        lines += [
            "",
            "| bin | " + " | ".join(f"{name}: n, predicted → observed" for name in curves) + " |",
            "|---|" + "---|" * len(curves),
        ]
        n_bins = len(next(iter(curves.values()))["bins"])
        for b in range(n_bins):
            first = next(iter(curves.values()))["bins"][b]
            cells = []
            for rel in curves.values():
                bin_ = rel["bins"][b]
                cells.append(
                    f"{bin_['n']}, {_pct(bin_['mean_probability'])} → {_pct(bin_['observed'])}" if bin_["n"] else "0"
                )
            lines.append(f"| {first['lower']:.1f}–{first['upper']:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
        if report.get("figure"):
            lines += [f"![reliability diagram]({report['figure']})", ""]
        elif report.get("figure_missing"):
            lines += [f"No figure: {report['figure_missing']}.", ""]
    return "\n".join(lines)


def _case_notes(account: Dict[str, Any]) -> List[str]:
    """A note for each group of labels that differ only in case: they are
    scored as different labels."""
    return [
        "labels that differ only in case are different labels: "
        + ", ".join(f"{label} ({n} spans)" for label, n in group.items())
        for group in account.get("labels_differing_in_case", [])
    ]


def _reasons(skipped: Dict[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]))
