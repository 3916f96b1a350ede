"""`python -m spacy_binary_ner db-drop DATASET`: delete a dataset's answers."""

import sys
from typing import Sequence

from ..cli_args import ArgumentParser, fail
from .storage import DB_HELP, Storage, database_error, database_url


def main(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="python -m spacy_binary_ner db-drop", description=__doc__)
    p.add_argument("dataset")
    p.add_argument("--db", default=None, help=DB_HELP)
    args = p.parse_args(argv)
    fail(p, database_error(args.db))
    storage = Storage(database_url(args.db))
    try:
        if args.dataset not in storage.datasets():
            print(f"db-drop: no dataset {args.dataset!r} in {storage.url}", file=sys.stderr)
            return 1
        n = storage.drop(args.dataset)
    finally:
        storage.close()
    print(f"db-drop: deleted {n} answers of {args.dataset!r}")
    return 0
