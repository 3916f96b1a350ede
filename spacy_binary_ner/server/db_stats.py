"""`python -m spacy_binary_ner db-stats [DATASET] [--agreement]`: answers per label, per answer and per
session; with `--agreement`, how far the sessions agree (see `spacy_binary_ner.agreement`)."""

import json
import sys
from typing import Sequence

from ..agreement import agreement_report, format_report
from ..cli_args import ArgumentParser, fail
from .storage import DB_HELP, Storage, database_error, database_url


def main(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="python -m spacy_binary_ner db-stats", description=__doc__)
    p.add_argument("dataset", nargs="?", default=None, help="a dataset (default: list them all)")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--agreement",
        action="store_true",
        help="agreement between sessions: percent and kappa per label for binary answers, span F1 for corrections",
    )
    args = p.parse_args(argv)
    if args.agreement and args.dataset is None:
        p.error("--agreement needs a DATASET")
    fail(p, database_error(args.db))
    storage = Storage(database_url(args.db))
    try:
        datasets = storage.datasets()
        if args.dataset is None:
            print(json.dumps(datasets) if args.json else "\n".join(f"{k}\t{v}" for k, v in sorted(datasets.items())))
            return 0
        if args.dataset not in datasets:
            print(f"db-stats: no dataset {args.dataset!r} in {storage.url}", file=sys.stderr)
            return 1
        if args.agreement:
            report = agreement_report([(a.session, a.task) for a in storage.iter_answers(args.dataset)])
        else:
            stats = storage.stats(args.dataset)
    finally:
        storage.close()
    if args.agreement:
        print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
        return 0
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    print(f"dataset {stats['dataset']}: {stats['answers stored']} answers stored, {stats['tasks answered']} tasks")
    print("answer   " + "  ".join(f"{k} {v}" for k, v in sorted(stats["by answer"].items())))
    for title in ("by label", "by session"):
        for name, counts in stats[title].items():
            print(f"{title[3:]:<8} {name}: " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0
