"""`python -m spacy_binary_ner db-out DATASET OUT.jsonl`: a dataset's answers as teach records.

One record per task with its latest answer (a correction supersedes what it
corrects), or with `--all` every answer given, in order. The file is our teach
format: `spacy train` reads it with `spacy-binary-ner.TeachCorpus.v1`.
"""

import sys
from pathlib import Path
from typing import Sequence

from ..cli_args import ArgumentParser, fail, output_file_error
from .storage import DB_HELP, Storage, database_error, database_url, write_jsonl


def main(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="python -m spacy_binary_ner db-out", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("output", type=Path, help="JSONL file to write")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("--session", default=None, help="only this session's answers")
    p.add_argument("--all", action="store_true", help="every answer given, in order, not only the latest per task")
    args = p.parse_args(argv)
    fail(p, output_file_error(args.output, "output"))
    fail(p, database_error(args.db))
    storage = Storage(database_url(args.db))
    try:
        if args.dataset not in storage.datasets():
            print(
                f"db-out: no dataset {args.dataset!r} in {storage.url} "
                f"(have: {', '.join(storage.datasets()) or 'none'})",
                file=sys.stderr,
            )
            return 1
        if args.all:
            answers = storage.iter_answers(args.dataset, session=args.session)
        else:
            answers = iter(storage.latest(args.dataset, session=args.session))
        n = write_jsonl(answers, args.output)
    finally:
        storage.close()
    print(f"db-out: wrote {n} records of {args.dataset!r} to {args.output}")
    return 0
