#!/usr/bin/env python3
"""Write complete text-category annotations (JSONL, `{"text", "cats"}`) as a
`.spacy` file for `spacy evaluate`, printing the account of every record.

    python scripts/textcat_docbin.py assets/textcat/en_gold_dev.jsonl corpus/textcat_dev.spacy --lang en
"""

import argparse
import sys
from pathlib import Path

import spacy
from spacy.tokens import DocBin

from spacy_binary_ner.textcat.reader import read_textcat_data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", type=Path, help="complete annotations: JSONL, .jsonl.gz or a folder")
    p.add_argument("output", type=Path, help=".spacy file to write")
    p.add_argument("--lang", default="en", help="language of the tokenizer (default: en)")
    args = p.parse_args()
    if not args.input.exists():
        print(f"textcat_docbin: no file {args.input}", file=sys.stderr)
        return 1
    examples, reader = read_textcat_data(spacy.blank(args.lang), complete_paths=args.input)
    total = reader.total()
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(total.skipped.items())) or "none"
    print(f"{args.input}: {total.records} records, {len(examples)} docs written, skipped: {skipped}")
    if not examples:
        print("textcat_docbin: nothing to write", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=[eg.reference for eg in examples], store_user_data=True).to_disk(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
