"""`python -m spacy_binary_ner db-stats [DATASET]`: answers per label, per answer and per session."""

import json
import sys
from typing import Sequence

from ..cli_args import ArgumentParser, fail
from .storage import DB_HELP, Storage, database_error, database_url


def main(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="python -m spacy_binary_ner db-stats", description=__doc__)
    p.add_argument("dataset", nargs="?", default=None, help="a dataset (default: list them all)")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    args = p.parse_args(argv)
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
        stats = storage.stats(args.dataset)
    finally:
        storage.close()
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    print(f"dataset {stats['dataset']}: {stats['answers stored']} answers stored, {stats['tasks answered']} tasks")
    print("answer   " + "  ".join(f"{k} {v}" for k, v in sorted(stats["by answer"].items())))
    for title in ("by label", "by session"):
        for name, counts in stats[title].items():
            print(f"{title[3:]:<8} {name}: " + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0
