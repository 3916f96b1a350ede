"""`python -m spacy_binary_ner teach DATASET PIPELINE SOURCE --label A,B`: the teach server.

Serves a page where people answer accept / reject / ignore about the spans the
model proposes, while the model learns from the answers; answers go to a
database (SQLite file by default, PostgreSQL by URL) and the model is saved
under `--output`, so a restart resumes both.
"""

import argparse
import gzip
import os
import secrets
import sys
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.util import fix_random_seed, load_config, load_model_from_config
from thinc.api import Optimizer

from ..data import iter_jsonl, records_to_examples
from ..loop import LOOP_LEARN_RATE, AnnotationLoop, PatternMatcher, initialize_pipeline, set_hashes
from ..pipeline import BinaryNER
from .engine import EngineSettings, LoopParts, load_state
from .storage import DB_HELP, database_url
from .worker import EngineError, Teacher

TOKEN_ENV = "SBN_TEACH_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def read_source(path: Path) -> Iterator[Dict[str, Any]]:
    """Tasks from a JSONL / `.jsonl.gz` file in our format (`text`, optional
    `tokens` and `meta`; spans and answers are dropped) or a plain text file
    (one text a line), read lazily. Blank texts are skipped."""
    name = path.name
    if path.is_dir() or name.endswith((".jsonl", ".jsonl.gz", ".json")):
        for i, record in enumerate(iter_jsonl(path), 1):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path} record {i}: a source record needs a string `text` ({str(record)[:80]})")
            if not record["text"].strip():
                continue
            task: Dict[str, Any] = {"text": record["text"]}
            for key in ("tokens", "meta", "_input_hash"):
                if record.get(key) is not None:
                    task[key] = record[key]
            yield set_hashes(task)
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf8") as f:
        for line in f:
            text = line.rstrip("\r\n")
            if text.strip():
                yield set_hashes({"text": text})


def load_pipeline(
    spec: str,
    labels: Sequence[str],
    sample: Sequence[Dict[str, Any]],
    output: Optional[Path],
    seed: int = 0,
) -> Tuple[Language, Optimizer, Dict[str, Any]]:
    """The pipeline to teach: the model saved under `output` if there is one
    (a restart), else `blank:LANG` (a new `binary_ner`), a `.cfg` config, or a
    trained pipeline (folder or package).

    RETURNS (Tuple[Language, Optimizer, Dict[str, Any]]): The pipeline, its
        optimizer and the saved state (`{}` for a new model).
    """
    saved = None
    if output is not None:
        for candidate in (output / "model", output / "model.old"):
            if (candidate / "config.cfg").exists() and load_state(candidate):
                saved = candidate
                break
    fix_random_seed(seed)
    if saved is not None:
        nlp = spacy.load(saved)
        state = load_state(saved)
        _ensure_labels(nlp, labels, str(saved))
        return nlp, _optimizer(nlp), state
    if spec.startswith("blank:"):
        nlp = spacy.blank(spec.split(":", 1)[1])
        nlp.add_pipe("binary_ner")
        return nlp, initialize_pipeline(nlp, labels, list(sample)), {}
    if spec.endswith(".cfg"):
        config = load_config(spec)
        config["system"]["seed"] = seed
        nlp = load_model_from_config(config, auto_fill=True)
        return nlp, initialize_pipeline(nlp, labels, list(sample)), {}
    nlp = spacy.load(spec)
    _ensure_labels(nlp, labels, spec)
    return nlp, _optimizer(nlp), {}


def _optimizer(nlp: Language) -> Optimizer:
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = LOOP_LEARN_RATE
    optimizer.averages = None
    return optimizer


def _ensure_labels(nlp: Language, labels: Sequence[str], where: str) -> None:
    """Labels the trained pipe lacks are added: its output layer grows and the
    labels it has keep their weights, so a new entity type can be taught on top."""
    pipes = [proc for _, proc in nlp.pipeline if isinstance(proc, BinaryNER)]
    if not pipes:
        raise ValueError(f"The pipeline {where} has no binary_ner component (it has {nlp.pipe_names}).")
    for label in labels:
        if label not in pipes[0].labels:
            pipes[0].add_label(label)
            print(f"Added the label {label} to the pipeline {where} (it had {', '.join(pipes[0].labels[:-1])})")


def _labels(args: argparse.Namespace) -> List[str]:
    labels = [label.strip() for label in args.label.split(",") if label.strip()]
    if not labels:
        raise ValueError("--label needs at least one label, e.g. --label PER,ORG")
    return labels


def build_loop(args: argparse.Namespace) -> LoopParts:
    """The annotation loop for parsed `teach` arguments, with its F1 function
    (`--eval`) and the state saved with the model; called in the engine process.

    RETURNS (LoopParts): `(loop, evaluate or None, state)`.
    """
    labels = _labels(args)
    sample = list(islice(read_source(args.source), 10))
    nlp, optimizer, state = load_pipeline(args.pipeline, labels, sample, args.output, seed=args.seed)
    matcher = PatternMatcher.from_file(nlp, args.patterns) if args.patterns else None
    loop = AnnotationLoop(
        nlp,
        sorter=args.sorter,
        patterns=matcher,
        pattern_ratio=args.pattern_ratio,
        pattern_lookahead=args.pattern_lookahead,
        pattern_max_answers=args.pattern_max_answers,
        optimizer=optimizer,
        replay=args.replay,
        chunk_size=args.chunk_size,
        seed=args.seed,
    )
    evaluate = None
    if args.eval is not None:
        gold = [r for r in iter_jsonl(args.eval)]
        examples = records_to_examples(nlp, gold, complete=True, labels=labels)

        def evaluate() -> float:
            with loop.averaged_params():
                return float(nlp.evaluate(examples)["ents_f"] or 0.0)

    return loop, evaluate, state


def build_teacher(args: argparse.Namespace) -> Teacher:
    """The server's engine for parsed `teach` arguments (see `parse_args`):
    starts the learning engine process and waits until it is ready."""
    _labels(args)
    if not list(islice(read_source(args.source), 1)):
        raise ValueError(f"{args.source}: no texts to ask about")
    args.output.mkdir(parents=True, exist_ok=True)
    settings = EngineSettings(
        partial(build_loop, args),
        partial(read_source, args.source),
        database_url(args.db),
        args.dataset,
        output=args.output,
        batch_size=args.batch_size,
        queue_size=args.queue_size,
        save_every=args.save_every,
        eval_every=args.eval_every,
    )
    return Teacher(settings, feed_overlap=args.feed_overlap, lease=args.lease)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m spacy_binary_ner teach", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="dataset name: answers are stored under it")
    p.add_argument("pipeline", help="trained pipeline (folder or package), a binary_ner .cfg, or blank:LANG")
    p.add_argument("source", type=Path, help="texts: JSONL / .jsonl.gz in our format, or plain text lines")
    p.add_argument("--label", required=True, help="comma list of entity labels")
    p.add_argument("--patterns", type=Path, default=None, help="EntityRuler patterns (JSONL) for a cold start")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder for the model and the default database (default: ./teach-DATASET)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--auth",
        default=None,
        help=f"token every request must carry (or env {TOKEN_ENV}); "
        "needed off loopback, made up and printed if not given",
    )
    p.add_argument("--eval", type=Path, default=None, help="gold JSONL: the page shows F1 on it")
    p.add_argument("--eval-every", type=int, default=100, help="answers between evaluations")
    p.add_argument("--save-every", type=int, default=100, help="answers between model saves")
    p.add_argument("--batch-size", type=int, default=10, help="most answers per model update")
    p.add_argument("--queue-size", type=int, default=20, help="questions kept ready")
    p.add_argument("--feed-overlap", action="store_true", help="every session gets every question")
    p.add_argument(
        "--lease",
        type=float,
        default=300.0,
        help="seconds a question handed to a session stays its own; then the next session asking gets it (0: never)",
    )
    p.add_argument("--sorter", default="uncertainty", choices=["uncertainty", "confident", "random"])
    p.add_argument("--pattern-ratio", type=float, default=0.5)
    p.add_argument("--pattern-lookahead", type=int, default=0, help="texts read ahead of the model for pattern matches")
    p.add_argument(
        "--pattern-max-answers", type=int, default=None, help="stop asking a pattern after this many answers"
    )
    p.add_argument("--replay", type=int, default=10, help="earlier answered texts rehearsed per update")
    p.add_argument("--chunk-size", type=int, default=8, help="texts scored at a time")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.output is None:
        args.output = Path(f"teach-{args.dataset}")
    if not args.source.exists():
        p.error(f"SOURCE {args.source}: no such file")
    for name in ("patterns", "eval"):
        value = getattr(args, name)
        if value is not None and not value.exists():
            p.error(f"--{name} {value}: no such file")
    if (
        min(args.batch_size, args.queue_size, args.eval_every, args.chunk_size) < 1
        or min(args.save_every, args.lease) < 0
    ):
        p.error(
            "--batch-size, --queue-size, --eval-every and --chunk-size must be positive, --save-every and --lease >= 0"
        )
    args.auth = args.auth or os.environ.get(TOKEN_ENV) or None
    if args.host not in LOOPBACK and not args.auth:
        args.auth = secrets.token_urlsafe(16)
        print(
            f"--host {args.host} is not loopback: requests need a token; made one up (pass --auth or "
            f"set {TOKEN_ENV} to choose it)",
            file=sys.stderr,
        )
    return args


def main(argv: Sequence[str]) -> int:
    import uvicorn

    from .app import create_app

    args = parse_args(argv)
    try:
        teacher = build_teacher(args)
    except (ValueError, OSError, EngineError) as err:
        print(f"teach: {err}", file=sys.stderr)
        return 1
    app = create_app(teacher, token=args.auth, on_shutdown=teacher.close)
    url = f"http://{args.host}:{args.port}/?session=default" + (f"&token={args.auth}" if args.auth else "")
    print(
        f"teach: dataset {args.dataset!r}, {teacher.storage.count(args.dataset)} answers stored, "
        f"{teacher.n_resumed} learned on start; model saved to {args.output / 'model'}",
        flush=True,
    )
    print(f"teach: open {url}  (Ctrl-C saves the model and stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    print("teach: stopped; model saved", flush=True)
    return 0
