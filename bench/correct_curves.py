"""Learning curves against simulated annotator time: teach, correct and
teach-then-correct on several corpora, from `simulate --mode` runs.

Each run is one `python -m spacy_binary_ner simulate --mode MODE ...` with its
own `--output` folder (see bench/README.md, "Correct against teach"); this
script gathers their `curve.jsonl` into one JSONL (a `corpus` field added),
draws one panel per corpus (test F1 against simulated minutes, a line per
mode), and prints the table at the given minutes.

    python bench/correct_curves.py resume_zh=runs/resume_zh-teach resume_zh=runs/resume_zh-correct ... \\
        --out bench/results/correct_curves.jsonl --plot bench/results/correct_curves.png --at 30,120
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

from spacy_binary_ner.simulate_correct import TIME_AXIS, table


def gather(runs: Sequence[str]) -> List[Dict[str, Any]]:
    """The points of each `CORPUS=FOLDER` run, a `corpus` field added."""
    points = []
    for run in runs:
        corpus, _, folder = run.partition("=")
        if not folder:
            raise SystemExit(f"{run}: give each run as CORPUS=FOLDER")
        for line in (Path(folder) / "curve.jsonl").read_text(encoding="utf8").splitlines():
            points.append({"corpus": corpus, **json.loads(line)})
    return points


def plot(points: Sequence[Dict[str, Any]], path: Path) -> None:
    """One panel per corpus: test F1 against simulated minutes, a line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = list(dict.fromkeys(p["corpus"] for p in points))
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.2 * len(corpora), 4.0), dpi=120, squeeze=False)
    for ax, corpus in zip(axes[0], corpora):
        mine = [p for p in points if p["corpus"] == corpus]
        for mode in dict.fromkeys(p["mode"] for p in mine):
            line = [p for p in mine if p["mode"] == mode]
            ax.plot([0] + [p["minutes"] for p in line], [0.0] + [p["f"] or 0.0 for p in line], marker="o", label=mode)
        first = mine[0]
        ax.set_title(
            f"{corpus}: {first['seconds_per_decision']:g} s/decision; "
            f"{first['seconds_per_text']:g} s/text + {first['seconds_per_edit']:g} s/edit",
            fontsize=9,
        )
        ax.set_xlabel(TIME_AXIS)
        ax.set_ylabel("test F1")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="CORPUS=FOLDER of a `simulate --mode` run")
    p.add_argument("--out", type=Path, required=True, help="JSONL of every point")
    p.add_argument("--plot", type=Path, default=None, help="PNG of the curves")
    p.add_argument("--at", default="30,120", help="simulated minutes of the table")
    args = p.parse_args(argv)
    points = gather(args.runs)
    with args.out.open("w", encoding="utf8") as out:
        for point in points:
            out.write(json.dumps(point, allow_nan=False) + "\n")
    if args.plot:
        plot(points, args.plot)
    at = [float(m) for m in args.at.split(",")]
    for corpus in dict.fromkeys(p["corpus"] for p in points):
        print(f"\n{corpus}\n")
        print(table([p for p in points if p["corpus"] == corpus], at))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
