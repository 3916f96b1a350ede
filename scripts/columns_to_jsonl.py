#!/usr/bin/env python3
"""Convert a tagged column file (CoNLL-style: one token per line, its tag in
the last column, a blank line between sentences) to complete-annotation JSONL
that the project reads as `dev` or `gold` (or that teachsim.py turns into teach
answers). Reads BIO, IOB1, BIOES and BMES tags; `-DOCSTART-` lines are skipped.

    python scripts/columns_to_jsonl.py assets/public/resume_zh/test.char.bmes gold.jsonl --join ""
    python scripts/columns_to_jsonl.py assets/public/wnut17_en/emerging.test.annotated gold.jsonl
"""

import argparse
import json
import sys
from typing import Iterator, List, Optional, Tuple

Span = Tuple[int, int, str]  # first token, last token (inclusive), label


def read_sentences(lines: Iterator[str], source: str) -> Iterator[Tuple[List[str], List[str]]]:
    """Sentences as (tokens, tags); a line without a tag raises a ValueError naming it."""
    tokens: List[str] = []
    tags: List[str] = []
    for line_no, line in enumerate(lines, 1):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            if tokens:
                yield tokens, tags
            tokens, tags = [], []
            continue
        columns = line.split()
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < 2:
            raise ValueError(f"{source}:{line_no}: expected a token and a tag, got {line!r}")
        tokens.append(columns[0])
        tags.append(columns[-1])
    if tokens:
        yield tokens, tags


def decode(tags: List[str]) -> List[Span]:
    """Spans of a tag sequence (BIO, IOB1, BIOES or BMES)."""
    spans: List[Span] = []
    open_start: Optional[int] = None
    open_label: Optional[str] = None

    def close(end: int) -> None:
        nonlocal open_start, open_label
        if open_start is not None:
            spans.append((open_start, end, open_label))
        open_start, open_label = None, None

    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if tag == "O" or not label:
            close(i - 1)
        elif prefix == "B":
            close(i - 1)
            open_start, open_label = i, label
        elif prefix in ("I", "M"):
            if open_label != label:
                close(i - 1)
                open_start, open_label = i, label
        elif prefix == "E":
            if open_label == label:
                close(i)
            else:
                close(i - 1)
                spans.append((i, i, label))
        elif prefix == "S":
            close(i - 1)
            spans.append((i, i, label))
        else:
            raise ValueError(f"unknown tag {tag!r}")
    close(len(tags) - 1)
    return spans


def to_record(tokens: List[str], spans: List[Span], join: str) -> dict:
    """A JSONL record: text, tokens with offsets, spans (token_end inclusive)."""
    records_tokens, pos = [], 0
    for i, word in enumerate(tokens):
        records_tokens.append({"text": word, "start": pos, "end": pos + len(word), "id": i})
        pos += len(word) + len(join)
    text = join.join(tokens)
    return {
        "text": text,
        "tokens": records_tokens,
        "spans": [
            {
                "start": records_tokens[s]["start"],
                "end": records_tokens[e]["end"],
                "token_start": s,
                "token_end": e,
                "label": label,
            }
            for s, e, label in spans
        ],
    }


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="column file (token ... tag)")
    p.add_argument("output", help="JSONL to write")
    p.add_argument("--join", default=" ", help='token separator in `text`: " " (default) or "" for characters')
    args = p.parse_args(argv)
    n_sentences = n_spans = 0
    with open(args.input, encoding="utf8") as f, open(args.output, "w", encoding="utf8") as out:
        for tokens, tags in read_sentences(f, args.input):
            spans = decode(tags)
            out.write(json.dumps(to_record(tokens, spans, args.join), ensure_ascii=False) + "\n")
            n_sentences += 1
            n_spans += len(spans)
    print(f"Wrote {n_sentences} sentences with {n_spans} entities to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
