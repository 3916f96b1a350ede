"""`python -m spacy_binary_ner debug-data CONFIG`: what spaCy's `debug data`
says about `ner` training data, for the teach data of a `binary_ner` pipe.

    python -m spacy_binary_ner debug-data configs/en_cnn.cfg \\
        --paths.train assets/en_teach.jsonl --paths.dev assets/en_gold_dev.jsonl

Reads the config's `[corpora.train]` and `[corpora.dev]` as training would
and prints, per corpus: per label the accepts, rejects and ignores of the
teach files and the entities of the complete annotations; every record that
was skipped and why (conflicting answers, duplicates, misaligned spans, ...);
the span lengths in tokens against the pipe's `max_span_length` (longer spans
are never scored, so never learned nor predicted); and the texts that occur in
both the training and the dev data. Exits 1 when a check fails (train/dev
overlap, a dev label never trained, spans no model can score), else 0.
"""

import dataclasses
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import srsly
from spacy.language import Language
from spacy.training import Example
from spacy.util import import_file, load_config, load_model_from_config, registry
from wasabi import msg

from .cli_args import ArgumentParser, fail, input_error, output_file_error
from .constants import ANSWERS
from .data import ReadStats, as_paths, read_teach_data
from .pipeline import find_binary_ner
from .reader_settings import ReaderSettings
from .records import REASONS, iter_lines, jsonl_files, nan_to_null

TEACH_READER = "spacy-binary-ner.TeachCorpus.v1"
# Fewer accepted or complete examples of a label than this get a warning
# (spaCy's debug data warns below 50 examples of a new NER label).
FEW_EXAMPLES = 50
_MAX_SHOWN = 5


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Config overrides as spaCy's CLI takes them: `--section.key value` or
    `--section.key=value`, values read as JSON where they parse, else strings.

    args (List[str]): The arguments after the known options.
    RETURNS (Dict[str, Any]): Dotted keys to values.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg:
            raise ValueError(f"Unexpected argument {arg!r}: config overrides look like --paths.train PATH")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ValueError(f"No value for the override {arg}")
            value = args[i + 1]
            i += 1
        try:
            out[key.replace("-", "_")] = srsly.json_loads(value)
        except ValueError:
            out[key.replace("-", "_")] = value
        i += 1
    return out


def corpus_report(
    nlp: Language,
    corpus_config: dict[str, Any],
    max_span_length: int,
) -> tuple[dict[str, Any], list[Example]]:
    """The statistics of one corpus of the config.

    nlp (Language): The pipeline (its tokenizer and vocab).
    corpus_config (Dict[str, Any]): The corpus section, interpolated.
    max_span_length (int): Longest span the pipe scores.
    RETURNS (Tuple[Dict[str, Any], List[Example]]): The report (JSON-ready)
        and the corpus's examples.
    """
    per_label: dict[str, Counter] = defaultdict(Counter)
    account: Optional[ReadStats] = None
    if corpus_config.get("@readers") == TEACH_READER:
        # Not strict: every record training would skip or fail on is reported.
        settings = dataclasses.replace(ReaderSettings.pick(corpus_config), strict=False)
        teach, complete = corpus_config.get("path"), corpus_config.get("complete_path")
        _count_records(teach, per_label, complete=False)
        _count_records(complete, per_label, complete=True)
        examples, reader = read_teach_data(nlp, teach, complete, settings)
        account = reader.total()
        key = settings.incorrect_spans_key
    else:
        corpus = registry.resolve({"corpus": corpus_config})["corpus"]
        examples = list(corpus(nlp))
        key = "incorrect_spans"
        for eg in examples:
            for ent in eg.reference.ents:
                per_label[ent.label_]["entity"] += 1
    lengths: dict[str, Counter] = defaultdict(Counter)
    too_long: dict[str, int] = Counter()
    for eg in examples:
        spans = list(eg.reference.ents) + list(eg.reference.spans.get(key, []))
        for span in spans:
            lengths[span.label_][len(span)] += 1
            if len(span) > max_span_length:
                too_long[span.label_] += 1
    report: dict[str, Any] = {
        "examples": len(examples),
        "labels": {label: dict(counts) for label, counts in sorted(per_label.items())},
        "span_lengths": {
            label: {"max": max(counts), "longer_than_max_span_length": too_long[label]}
            for label, counts in sorted(lengths.items())
        },
        "account": account.to_dict() if account is not None else None,
    }
    return report, examples


def _count_records(paths: Any, per_label: dict[str, Counter], *, complete: bool) -> None:
    """Per label, the raw answers of teach files (or the entities of complete
    files) before any merging: what was given, as opposed to what was used."""
    for path in as_paths(paths):
        for file in jsonl_files(path):
            for _, value in iter_lines(file):
                if not isinstance(value, dict) or not isinstance(value.get("spans"), list):
                    continue
                is_complete = value.get("complete", complete) is True
                answer = "complete" if is_complete else value.get("answer")
                if answer not in ANSWERS and answer != "complete":
                    continue
                for span in value["spans"]:
                    if isinstance(span, dict) and isinstance(span.get("label"), str):
                        per_label[span["label"]][answer] += 1


def debug_data(config_path: Path, overrides: dict[str, Any], code: Optional[Path] = None) -> dict[str, Any]:
    """Check the teach data of a config; print the report.

    config_path (Path): The training config.
    overrides (Dict[str, Any]): Config overrides, e.g. {"paths.train": "x.jsonl"}.
    code (Optional[Path]): A Python file to import first (registered functions).
    RETURNS (Dict[str, Any]): The report; `report["failed"]` lists failed checks.
    """
    if code is not None:
        import_file("code", code)
    config = load_config(config_path, overrides=overrides, interpolate=False)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    try:
        name, pipe = find_binary_ner(nlp)
    except ValueError as error:
        raise ValueError(f"{config_path}: {error} For other pipelines: `python -m spacy debug data`.") from error
    L = pipe.max_span_length
    corpora = config.interpolate()["corpora"]
    msg.divider(f"Teach data for '{name}' (max_span_length {L})")
    report: dict[str, Any] = {"component": name, "max_span_length": L, "failed": [], "warnings": []}
    texts: dict[str, set[str]] = {}
    for split in ("train", "dev"):
        if split not in corpora:
            report["warnings"].append(f"no [corpora.{split}]")
            continue
        section, examples = corpus_report(nlp, corpora[split], L)
        report[split] = section
        texts[split] = {eg.reference.text for eg in examples}
        _print_corpus(split, section, L)
    _check_label_case(report, pipe.labels)
    train, dev = report.get("train"), report.get("dev")
    if train and dev:
        overlap = sorted(texts["train"] & texts["dev"])
        report["overlap"] = {"texts": len(overlap), "first": overlap[:_MAX_SHOWN]}
        msg.divider("Train / dev overlap")
        if overlap:
            msg.fail(f"{len(overlap)} dev texts also occur in the training data, e.g. {overlap[0]!r}")
            report["failed"].append("train/dev overlap")
        else:
            msg.good("No overlap between training and dev texts")
        trained = {label for label, counts in train["labels"].items() if counts.get("accept") or counts.get("complete")}
        untrained = sorted(set(dev["labels"]) - trained - set(pipe.labels))
        if untrained:
            msg.fail(f"Dev labels never accepted in training: {', '.join(untrained)}")
            report["failed"].append("dev labels not in training")
    for split in ("train", "dev"):
        for info in (report.get(split) or {}).get("span_lengths", {}).values():
            if info["longer_than_max_span_length"]:
                report["failed"].append(f"{split} spans longer than max_span_length")
                break
    msg.divider("Summary")
    if report["failed"]:
        msg.fail(f"Checks failed ({len(report['failed'])}): {'; '.join(report['failed'])}")
    else:
        msg.good("All checks passed")
    return report


def _check_label_case(report: dict[str, Any], pipe_labels: Sequence[str]) -> None:
    """Labels of the pipe and the corpora that differ only in case: labels
    are case-sensitive, so they are different labels (answers about `per`
    teach nothing about `PER`). Warned about, each with its spans per split."""
    groups: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for label in pipe_labels:
        groups[label.lower()].setdefault(label, {})
    for split in ("train", "dev"):
        for label, counts in (report.get(split) or {}).get("labels", {}).items():
            groups[label.lower()].setdefault(label, {})[split] = sum(counts.values())
    found = [dict(sorted(group.items())) for _, group in sorted(groups.items()) if len(group) > 1]
    report["labels_differing_in_case"] = found
    if found:
        msg.divider("Labels differing only in case")
    for group in found:
        where = "; ".join(
            f"{label!r}: " + (", ".join(f"{n} {split} spans" for split, n in counts.items()) or "the pipe's label")
            for label, counts in group.items()
        )
        text = f"labels that differ only in case are different labels (case-sensitive): {where}; keep one"
        msg.warn(text)
        report["warnings"].append(text)


def _print_corpus(split: str, section: dict[str, Any], L: int) -> None:
    msg.divider(f"{split}: {section['examples']} examples")
    rows = []
    for label, counts in section["labels"].items():
        lengths = section["span_lengths"].get(label, {"max": 0, "longer_than_max_span_length": 0})
        rows.append(
            (
                label,
                counts.get("accept", 0),
                counts.get("reject", 0),
                counts.get("ignore", 0),
                counts.get("complete", 0) + counts.get("entity", 0),
                lengths["max"],
                lengths["longer_than_max_span_length"],
            )
        )
    if rows:
        msg.table(
            rows,
            header=("label", "accepts", "rejects", "ignores", "complete", "longest", f"> {L} tokens"),
            divider=True,
        )
    for label, counts in section["labels"].items():
        positives = counts.get("accept", 0) + counts.get("complete", 0) + counts.get("entity", 0)
        if split == "train" and positives < FEW_EXAMPLES:
            msg.warn(f"Label {label!r}: {positives} accepted or complete examples (fewer than {FEW_EXAMPLES})")
    for label, info in section["span_lengths"].items():
        if info["longer_than_max_span_length"]:
            msg.fail(
                f"Label {label!r}: {info['longer_than_max_span_length']} spans are longer than max_span_length "
                f"({L} tokens, longest {info['max']}): never scored, so never learned. Raise max_span_length."
            )
    account = section["account"]
    if account:
        msg.info(
            f"{account['records']} records: {account['used']} used ({account['merged']} merged into an earlier "
            f"record's example), {account['skipped']} skipped"
        )
        dropped = dict(account["skipped_by_reason"])
        for reason, count in account["spans"].items():
            if reason not in ("read", "used") and reason not in dropped:
                dropped[f"{reason} (spans)"] = count
        for reason, count in sorted(dropped.items()):
            base = reason.replace(" (spans)", "")
            where = ", ".join(account["where"].get(base, [])[:3])
            line = f"{reason}: {count}" + (f" (e.g. {where})" if where else "")
            if base in REASONS:
                line += f". {REASONS[base]}"
            (msg.info if base in ("ignore answer", "duplicate answer") else msg.warn)(line)


def main(argv: list[str]) -> int:
    """Run the command. RETURNS (int): 0 if every check passed, else 1."""
    p = ArgumentParser(
        prog="python -m spacy_binary_ner debug-data",
        description="Statistics and checks of the teach data a binary_ner config trains on (spaCy's debug data, "
        "for accept/reject/ignore answers). Config overrides as for spacy train: --paths.train PATH ...",
    )
    p.add_argument("config", type=Path, help="training config, e.g. configs/en_cnn.cfg")
    p.add_argument("--code", type=Path, default=None, help="Python file with registered functions to import")
    p.add_argument("--json", type=Path, default=None, help="also write the report to this JSON file")
    args, rest = p.parse_known_args(argv)
    fail(p, input_error(args.config, "config"))
    if args.code is not None:
        fail(p, input_error(args.code, "--code"))
    if args.json is not None:
        fail(p, output_file_error(args.json, "--json"))
    try:
        overrides = parse_overrides(rest)
    except ValueError as err:
        p.error(str(err))
    report = debug_data(args.config, overrides, code=args.code)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(nan_to_null(report), indent=2, ensure_ascii=False, allow_nan=False)
        args.json.write_text(text + "\n", encoding="utf8")
    return 1 if report["failed"] else 0
