#!/usr/bin/env python3
"""Print the README's results table from named result files of
`bench/binary_benchmark.py` (`bench/results/<name>.json`).

Each row is one run, named with its date and machine: its `binary_ner` test F1,
spaCy `ner`'s and the words/s ratio where that run trained `ner` too, and
`binary_ner` over `binary_ner_gold` (the same sentences' complete annotation),
from the same run or from the gold run a row names, which must have the same
data, vectors, step budget, day and machine.

    python scripts/results_table.py            # print the table
    python scripts/results_table.py --check    # exit 1 where README.md's table differs
    python scripts/results_table.py --write    # put the table into README.md
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- results-table: python scripts/results_table.py --write -->"
END = "<!-- /results-table -->"


@dataclass(frozen=True)
class Row:
    """One row of the table.

    label (str): what the row is, e.g. "resume_zh teach-1x".
    run (str): the result file `bench/results/<run>.json`.
    gold (Optional[str]): the result file of `binary_ner_gold` for "÷ full gold"
        where `run` has none; same data, vectors, step budget, day and machine.
    """

    label: str
    run: str
    gold: Optional[str] = None


ROWS = [
    Row("resume_zh teach-1x", "resume_zh-teach-1x", gold="resume_zh-gold"),
    Row("msra_zh teach-1x", "msra_zh-teach-1x", gold="msra_zh-gold"),
    Row("conll2003_en teach-1x", "conll2003_en-teach-1x"),
    Row("conll2003_en teach-1x", "conll2003_en-teach-1x-ner"),
    Row("conll2003_en teach-1x + vectors", "conll2003_en-teach-1x-vectors", gold="conll2003_en-gold-vectors"),
    Row("conll2003_en teach-1x + vectors", "conll2003_en-teach-1x-vectors-ner"),
]

HEADER = [
    "| data, decisions | `binary_ner` F1 | ÷ full gold | spaCy `ner` F1 | words/s × spaCy `ner` | run: date, machine |",
    "|---|---|---|---|---|---|",
]


def read_run(name: str, results: Path = RESULTS) -> Dict:
    """The result file `results/<name>.json` of a `binary_benchmark.py` run."""
    return json.loads((results / f"{name}.json").read_text(encoding="utf8"))


def system_run(run: Dict, system: str, seed: int = 0) -> Optional[Dict]:
    """The run's result of `system` with `seed`, or None where it has none."""
    return next((r for r in run["runs"] if r["system"] == system and r["seed"] == seed), None)


def short_machine(machine: str) -> str:
    """'2 cores, Intel(R) Xeon(R) Processor, Python 3.11.7, ...' -> 'Intel Xeon'."""
    cpu = machine.split(",")[1]
    cpu = re.sub(r"\(R\)|\(TM\)|\bProcessor\b|\bCPU\b", "", cpu)
    return " ".join(cpu.split())


def gold_f(row: Row, run: Dict, results: Path) -> Optional[float]:
    """`binary_ner_gold`'s test F1 for the row: from its own run, else from the
    row's gold run, checked to have the same data, vectors, step budget, day
    and machine."""
    own = system_run(run, "binary_ner_gold")
    if own is not None or row.gold is None:
        return own["f"] if own is not None else None
    gold = read_run(row.gold, results)
    for key in ("data", "vectors", "max_steps", "date", "machine"):
        if gold["meta"].get(key) != run["meta"].get(key):
            raise ValueError(f"{row.gold}: {key} {gold['meta'][key]!r} is not {row.run}'s {run['meta'][key]!r}")
    found = system_run(gold, "binary_ner_gold")
    if found is None:
        raise ValueError(f"{row.gold} has no binary_ner_gold run of seed 0")
    return found["f"]


def table_row(row: Row, results: Path = RESULTS) -> str:
    """One Markdown row: every number from `row.run`, "÷ full gold" as `gold_f` says."""
    run = read_run(row.run, results)
    ours = system_run(run, "binary_ner")
    if ours is None:
        raise ValueError(f"{row.run} has no binary_ner run of seed 0")
    ner = system_run(run, "ner")
    gold = gold_f(row, run, results)
    name = f"`{row.run}`" + (f" (÷ `{row.gold}`)" if row.gold else "")
    cells = [
        row.label,
        f"**{ours['f']:.3f}**",
        f"{ours['f'] / gold:.2f}" if gold else "",
        f"{ner['f']:.3f}" if ner else "",
        f"{ours['wps'] / ner['wps']:.2f}" if ner else "",
        f"{name}: {run['meta']['date']}, {short_machine(run['meta']['machine'])}",
    ]
    return "| " + " | ".join(cells) + " |"


def results_table(rows: List[Row] = ROWS, results: Path = RESULTS) -> str:
    """The whole table, Markdown, without the markers."""
    return "\n".join(HEADER + [table_row(row, results) for row in rows])


def readme_table(text: str) -> str:
    """The table between the README's markers."""
    return _table_block(text).group(1).rstrip("\n")


def _table_block(text: str) -> "re.Match[str]":
    match = re.search(rf"{re.escape(BEGIN)}\n(.*?){re.escape(END)}", text, flags=re.S)
    if match is None:
        raise ValueError(f"README.md has no {BEGIN} ... {END} block")
    return match


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = p.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="exit 1 where README.md's table differs")
    action.add_argument("--write", action="store_true", help="put the table into README.md")
    args = p.parse_args(argv)
    table = results_table()
    if not (args.check or args.write):
        print(table)
        return 0
    text = README.read_text(encoding="utf8")
    if args.check:
        if readme_table(text) != table:
            print("README.md's results table differs; run python scripts/results_table.py --write", file=sys.stderr)
            return 1
        return 0
    block = _table_block(text)
    README.write_text(text[: block.start()] + f"{BEGIN}\n{table}\n{END}" + text[block.end() :], encoding="utf8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
