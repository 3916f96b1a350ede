"""`python -m spacy_binary_ner convert`: teach answers and complete annotations
(JSONL) to a spaCy DocBin, with an account of every record.

    python -m spacy_binary_ner convert answers.jsonl more.jsonl.gz train.spacy \\
        --complete gold.jsonl --lang zh --report report.json

The `.spacy` file trains the `binary_ner` pipe through spaCy's own
`spacy.Corpus.v1` reader: accepted spans are `doc.ents` with every other token
missing, rejected spans are in `doc.spans["incorrect_spans"]`, complete
annotations have every other token "O", and with `--propagate-accepts` the weak
entities are in `doc.spans["binary_ner_weak"]`.
"""

import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import DocBin

from .cli_args import ArgumentParser, fail, input_error, language_error, output_file_error, print_error
from .data import REASONS, ReaderSettings, ReadStats, TeachDataError, TeachReader
from .reader_settings import setting_fields
from .records import jsonl_files


def make_nlp(lang: str, segmenter: Optional[str] = None) -> Language:
    """A blank pipeline whose tokenizer splits records that have no `tokens`.

    lang (str): Language code, e.g. "en" or "zh".
    segmenter (Optional[str]): For "zh": "char" (spaCy's default) or "jieba".
    RETURNS (Language): The pipeline.
    """
    if segmenter is None:
        return spacy.blank(lang)
    if lang != "zh":
        raise ValueError(f"--segmenter is for Chinese (--lang zh), not --lang {lang}")
    if segmenter == "jieba":
        try:
            import jieba  # noqa: F401
        except ImportError:
            raise ValueError(
                "--segmenter jieba needs the jieba package: pip install 'spacy-binary-ner[jieba]'"
            ) from None
    return spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": segmenter}}})


def convert(
    nlp: Language,
    paths: List[str],
    complete_paths: List[str],
    output: Path,
    settings: Optional[ReaderSettings] = None,
    **overrides: Any,
) -> Dict[str, Any]:
    """Convert JSONL files to a DocBin file and return the account.

    nlp (Language): Pipeline whose tokenizer splits records without `tokens`.
    paths (List[str]): Teach answer files or folders.
    complete_paths (List[str]): Complete annotation files or folders.
    output (Path): The `.spacy` file to write.
    settings (Optional[ReaderSettings]): How to read (the defaults if None).
    overrides: Fields of `ReaderSettings` to set (on top of `settings`).
    RETURNS (Dict[str, Any]): The report: every setting, per-file and total
        accounts.
    """
    reader = TeachReader(nlp, settings, **overrides)
    for path in paths:
        reader.read_path(path, complete=False)
    for path in complete_paths:
        reader.read_path(path, complete=True)
    examples = reader.examples()
    doc_bin = DocBin(store_user_data=False)
    for eg in examples:
        doc_bin.add(eg.reference)
    output.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output)
    files = [
        {"path": source, "complete": complete, **stats.to_dict()}
        for source, complete, stats in zip(reader.sources, reader.complete, reader.stats)
    ]
    return {
        "output": str(output),
        "docs": len(examples),
        "lang": nlp.lang,
        "settings": reader.settings.to_dict(),
        "files": files,
        "total": reader.total().to_dict(),
        "propagated": dict(sorted(reader.propagated.items())),
    }


def format_account(report: Dict[str, Any]) -> str:
    """The report as a plain-text table: one column per file and a total."""
    columns = [(Path(f["path"]).name + (" (complete)" if f["complete"] else ""), f) for f in report["files"]]
    columns.append(("total", report["total"]))
    reasons = sorted({r for _, c in columns for r in c["skipped_by_reason"]})
    changed = sorted({r for _, c in columns for r in c["changed"]})
    span_rows = sorted({r for _, c in columns for r in c["spans"]} - {"read", "used"})
    rows = [
        ("records read", "records"),
        ("  used", "used"),
        ("    of which merged", "merged"),
        ("  skipped", "skipped"),
    ]
    table: List[List[str]] = [[""] + [name for name, _ in columns]]
    for label, key in rows:
        table.append([label] + [str(c[key]) for _, c in columns])
    for reason in reasons:
        table.append([f"    {reason}"] + [str(c["skipped_by_reason"].get(reason, 0)) for _, c in columns])
    table.append(["examples"] + [str(c["examples"]) for _, c in columns])
    table.append(["spans read"] + [str(c["spans"].get("read", 0)) for _, c in columns])
    table.append(["  used"] + [str(c["spans"].get("used", 0)) for _, c in columns])
    for reason in span_rows:
        table.append([f"  dropped: {reason}"] + [str(c["spans"].get(reason, 0)) for _, c in columns])
    for name in changed:
        table.append([name] + [str(c["changed"].get(name, 0)) for _, c in columns])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in table
    ]
    if report.get("propagated"):
        lines += ["", "accepted strings propagated as weak entities:"]
        lines += [f"  {name}: {n}" for name, n in report["propagated"].items()]
    for group in report["total"]["labels_differing_in_case"]:
        counts = ", ".join(f"{label} {n}" for label, n in group.items())
        lines += ["", f"warning: labels that differ only in case are two labels: {counts} (spans read)"]
    where = report["total"]["where"]
    notes = [f"  {reason}: {', '.join(places)}" for reason, places in where.items() if reason != "ignore answer"]
    if notes:
        lines += ["", "first places of each reason:"] + notes
    return "\n".join(lines)


def _labels(value: str) -> Tuple[str, ...]:
    return tuple(label for label in value.split(",") if label)


def add_reader_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every field of `ReaderSettings`: `--max-length` for
    `max_length` (a switch for a boolean, `--labels` comma-separated), with the
    field's doc and default as help.

    parser (argparse.ArgumentParser): The parser to add the flags to.
    """
    for f in setting_fields():
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        doc = f.metadata["doc"]
        if f.type is bool and f.default:
            parser.add_argument(flag, dest=f.name, action="store_false", help=f.metadata["flag_help"])
        elif f.type is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=doc)
        elif f.name == "labels":
            parser.add_argument(flag, dest=f.name, type=_labels, default=None, help=f"Comma-separated. {doc}")
        else:
            parser.add_argument(
                flag,
                dest=f.name,
                type=type(f.default),
                choices=f.metadata["choices"],
                default=f.default,
                help=f"{doc} Default: {f.default}.",
            )


def main(argv: List[str]) -> int:
    """Run the converter. A wrong argument is one line on stderr and exit
    status 2, before anything is read or written; a record that stops the
    read (`--strict`) is one line and exit status 1, nothing written.

    argv (List[str]): The arguments after `convert`.
    RETURNS (int): The exit status.
    """
    prog = "python -m spacy_binary_ner convert"
    p = ArgumentParser(
        prog=prog,
        description="Convert teach answers and complete annotations (JSONL, plain or .gz) to a .spacy DocBin "
        "that the binary_ner pipe trains on with spaCy's spacy.Corpus.v1, and account for every record.",
    )
    p.add_argument("paths", nargs="+", help="teach answer files or folders, then the output .spacy file")
    p.add_argument(
        "--complete",
        action="append",
        default=[],
        metavar="IN.jsonl",
        help="complete annotations (every entity marked); repeat for several files",
    )
    p.add_argument("--lang", default="en", help="language of the blank tokenizer (default en)")
    p.add_argument(
        "--segmenter",
        choices=("char", "jieba"),
        default=None,
        help="Chinese word segmenter for records without tokens (default: spaCy's, char)",
    )
    p.add_argument("--report", type=Path, default=None, help="write the account as JSON here")
    add_reader_flags(p)
    args = p.parse_args(argv)
    *inputs, output = args.paths
    if not inputs and not args.complete:
        p.error("give at least one input file (teach answers, or --complete) before the output file")
    output = Path(output)
    if output.suffix != ".spacy":
        p.error(f"argument paths: the last path is the output and must end in .spacy, not '{output}'")
    nlp = _check_arguments(p, args, inputs, output)
    try:
        report = convert(nlp, inputs, args.complete, output, ReaderSettings.pick(vars(args)))
    except TeachDataError as err:
        print_error(prog, str(err))
        return 1
    print(format_account(report))
    print(f"\nWrote {report['docs']} docs to {output}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n", "utf8")
        print(f"Wrote the account to {args.report}")
    return 0


def _check_arguments(p: argparse.ArgumentParser, args: argparse.Namespace, inputs: List[str], output: Path) -> Language:
    """Every argument checked, before anything is read or written; the
    pipeline made. Exits through `p.error` on the first wrong one."""
    for path, argument in [(path, "paths") for path in inputs] + [(path, "--complete") for path in args.complete]:
        fail(p, input_error(path, argument))
        try:
            jsonl_files(path)
        except TeachDataError as err:
            p.error(f"argument {argument}: {err}")
    fail(p, output_file_error(output, "paths (the output)"))
    if args.report is not None:
        fail(p, output_file_error(args.report, "--report"))
        if args.report.resolve() == output.resolve():
            p.error("argument --report: the report would overwrite the output: give another file")
    try:
        ReaderSettings.pick(vars(args))
    except ValueError as err:
        names = [f.name for f in setting_fields() if str(err).startswith(f.name)]
        flag = "--" + names[0].replace("_", "-") if names else "reader settings"
        p.error(f"argument {flag}: {err}")
    fail(p, language_error(args.lang))
    try:
        return make_nlp(args.lang, args.segmenter)
    except ValueError as err:
        p.error(f"argument --segmenter: {err}")


__all__ = ["add_reader_flags", "convert", "format_account", "main", "make_nlp", "REASONS", "ReadStats"]
