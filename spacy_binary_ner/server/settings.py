"""The settings of `teach` (spans, or text categories with `--task textcat`),
`correct` and `silver-to-gold`, each written once: its name, type, default
and help. A command's line is made from the fields of its settings class
(`TextcatTeachSettings`, `CorrectSettings` and `SilverSettings` extend
`TeachSettings`), and the settings travel whole (a frozen dataclass) to the
learning engine."""

import argparse
import os
import secrets
import sys
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, List, Optional, Sequence, Tuple, Type, TypeVar

from ..cli_args import ArgumentParser, fail, input_error, output_folder_error
from ..loop import check_labels
from .storage import DB_HELP, database_error

TOKEN_ENV = "SBN_TEACH_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The teach settings a whole-text command has no use for: it asks about every
# text in order, with no sorter and no patterns.
_PATTERNS = ("patterns", "pattern_ratio", "pattern_lookahead", "pattern_max_answers")
_WHOLE_TEXT_HIDDEN = ("sorter", "chunk_size", "task") + _PATTERNS
# The text-category loop's sorters (`textcat.loop.SORTERS`, not imported: a
# command line is made without loading the model code).
TEXTCAT_SORTERS = ("uncertainty", "none")


def _setting(
    default: Any = MISSING,
    help: str = "",
    *,
    parse: Optional[Callable[[str], Any]] = None,
    choices: Optional[Sequence[str]] = None,
    required: bool = False,
) -> Any:
    """A field with what its command-line flag needs. A field without a
    default is a positional argument; a bool one a switch."""
    metadata = {"help": help, "parse": parse, "choices": choices, "required": required}
    return field(default=default, metadata=metadata)


# The serving settings every server command has (a field per class).
def _host() -> Any:
    return _setting("127.0.0.1", "address to serve on")


def _port() -> Any:
    return _setting(8080, "port to serve on")


def _auth() -> Any:
    return _setting(
        None,
        f"token every request must carry (or env {TOKEN_ENV}); needed off loopback, made up and printed if not given",
        parse=str,
    )


@dataclass(frozen=True)
class TeachSettings:
    """Everything `teach` is told: the server's and the learning engine's settings."""

    # The command (also which questions the engine asks), the positional
    # arguments in order, and the fields that are no flag of this command
    # (they keep their default).
    command: ClassVar[str] = "teach"
    positionals: ClassVar[Tuple[str, ...]] = ("dataset", "pipeline", "source")
    hidden: ClassVar[Tuple[str, ...]] = ()

    dataset: str = _setting(help="dataset name: answers are stored under it")
    pipeline: str = _setting(help="trained pipeline (folder or package), a binary_ner .cfg, or blank:LANG")
    source: Path = _setting(help="texts: JSONL / .jsonl.gz in our format, or plain text lines", parse=Path)
    label: str = _setting("", "comma list of entity labels", required=True)
    task: str = _setting(
        "ner", "what is asked: entity spans, or text categories (see its own --help)", choices=("ner", "textcat")
    )
    patterns: Optional[Path] = _setting(None, "EntityRuler patterns (JSONL) for a cold start", parse=Path)
    db: Optional[str] = _setting(None, DB_HELP, parse=str)
    output: Optional[Path] = _setting(
        None, "folder the model is saved to, as `model/` (default: ./teach-DATASET)", parse=Path
    )
    host: str = _host()
    port: int = _port()
    auth: Optional[str] = _auth()
    eval: Optional[Path] = _setting(None, "gold JSONL: the page shows F1 on it", parse=Path)
    eval_every: int = _setting(100, "answers between evaluations")
    save_every: int = _setting(100, "answers between model saves (0: only on stop)")
    batch_size: int = _setting(10, "most answers per model update")
    queue_size: int = _setting(20, "questions kept ready at least (two per active session if that is more)")
    feed_overlap: bool = _setting(False, "every session gets every question")
    answers_per_question: int = _setting(
        1, "each question goes to this many different sessions, whichever come (not with --feed-overlap)"
    )
    lease: float = _setting(
        300.0,
        "seconds a question handed to a session stays its own; then the next session asking gets it (0: never)",
    )
    allow_new_tasks: bool = _setting(False, "store answers to tasks the server never asked (default: 422 for those)")
    stop_timeout: float = _setting(
        30.0,
        "seconds SIGTERM, SIGHUP or Ctrl-C may take: the answers left are learned, the model saved; past "
        "two thirds of it the model is saved with what it learned",
    )
    sorter: str = _setting("uncertainty", "which questions first", choices=("uncertainty", "confident", "random"))
    pattern_ratio: float = _setting(0.5, "share of questions from pattern matches while patterns are asked")
    pattern_lookahead: int = _setting(0, "texts read ahead of the model for pattern matches")
    pattern_max_answers: Optional[int] = _setting(None, "stop asking a pattern after this many answers", parse=int)
    replay: int = _setting(10, "earlier answered texts rehearsed per update")
    chunk_size: int = _setting(8, "texts scored at a time")
    seed: int = _setting(0, "random seed")

    @property
    def learns(self) -> bool:
        """Whether the engine learns from the answers."""
        return True

    @property
    def questions(self) -> str:
        """Which questions the engine asks (`EngineSettings.questions`)."""
        return self.command

    @property
    def labels(self) -> List[str]:
        """The labels of `label`, in order."""
        labels = [label.strip() for label in self.label.split(",") if label.strip()]
        if not labels:
            raise ValueError("--label needs at least one label, e.g. --label PER,ORG")
        check_labels(labels)
        return labels

    @property
    def model_dir(self) -> Path:
        """Where the model is saved."""
        assert self.output is not None
        return self.output / "model"


@dataclass(frozen=True)
class TextcatTeachSettings(TeachSettings):
    """What `teach --task textcat` is told: `teach`'s settings less the
    patterns, and the shape of its text-category questions."""

    hidden: ClassVar[Tuple[str, ...]] = _PATTERNS

    pipeline: str = _setting(
        help="trained pipeline with a binary_textcat (folder or package), a textcat .cfg, or blank:LANG"
    )
    label: str = _setting("", "comma list of the text categories", required=True)
    task: str = _setting("textcat", "what is asked: text categories", choices=("textcat",))
    sorter: str = _setting("uncertainty", "which questions first", choices=TEXTCAT_SORTERS)
    choice: bool = _setting(False, "one question per text with every label an option (number keys toggle them)")
    exclusive: bool = _setting(False, "the labels exclude each other (for blank:LANG; a trained pipe keeps its own)")
    per_text: int = _setting(1, "most label questions per text, the most uncertain labels first")
    eval: Optional[Path] = _setting(
        None, "gold JSONL with complete `cats`: the page shows accuracy (exclusive) or macro-F1 on it", parse=Path
    )

    @property
    def questions(self) -> str:
        """Which questions the engine asks: text categories."""
        return "textcat"


@dataclass(frozen=True)
class CorrectSettings(TeachSettings):
    """What `correct` is told: `teach`'s settings less the sorter and patterns,
    and whether the engine learns from the corrections."""

    command: ClassVar[str] = "correct"
    hidden: ClassVar[Tuple[str, ...]] = _WHOLE_TEXT_HIDDEN

    queue_size: int = _setting(
        2, "texts predicted ahead (two per active session if that is more); small, so that updates show"
    )
    update: bool = _setting(
        False, "learn from each corrected text: the texts after it are predicted by the updated model"
    )

    @property
    def learns(self) -> bool:
        """Whether the engine learns from the answers (`--update`)."""
        return self.update


@dataclass(frozen=True)
class SilverSettings(CorrectSettings):
    """What `silver-to-gold` is told: `correct`'s settings, its texts and their
    binary answers read from the dataset `dataset_in` instead of a source file
    (`source` is None)."""

    command: ClassVar[str] = "silver-to-gold"
    positionals: ClassVar[Tuple[str, ...]] = ("dataset_in", "dataset", "pipeline")
    hidden: ClassVar[Tuple[str, ...]] = _WHOLE_TEXT_HIDDEN + ("source",)

    dataset_in: str = _setting("", "dataset of binary answers: each text answered there is served once")


Settings = TypeVar("Settings", bound=TeachSettings)


def make_parser(prog: str, description: str, cls: Type[TeachSettings] = TeachSettings) -> argparse.ArgumentParser:
    """The command line, one argument per field of the settings class `cls`
    (but its `hidden` ones): its `positionals` in order, then the flags."""
    p = ArgumentParser(prog=prog, description=description)
    by_name = {f.name: f for f in fields(cls)}
    for name in cls.positionals:
        meta = by_name[name].metadata
        p.add_argument(name, type=meta["parse"] or str, help=meta["help"])
    for f in fields(cls):
        meta = f.metadata
        if f.name in cls.positionals or f.name in cls.hidden:
            continue
        if f.type is bool:
            p.add_argument(_flag(f.name), dest=f.name, action="store_true", help=meta["help"])
        else:
            kwargs: dict = {"dest": f.name, "help": meta["help"], "type": meta["parse"] or type(f.default)}
            if meta["required"]:
                kwargs["required"] = True
            else:
                kwargs["default"] = f.default
            if meta["choices"]:
                kwargs["choices"] = list(meta["choices"])
            p.add_argument(_flag(f.name), **kwargs)
    return p


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_settings(
    argv: Sequence[str],
    prog: str,
    description: str,
    cls: Type[Settings] = TeachSettings,  # type: ignore[assignment]
) -> Settings:
    """Settings of class `cls` from a command line, checked, with the
    defaults that depend on other settings filled in (output folder, token)."""
    p = make_parser(prog, description, cls)
    given = vars(p.parse_args(argv))
    if "source" in cls.hidden:
        given["source"] = None
    settings = cls(**given)
    if settings.output is None:
        settings = replace(settings, output=Path(f"{cls.command}-{settings.dataset}"))
    try:
        settings.labels  # noqa: B018 (checks them)
    except ValueError as err:
        p.error(f"argument --label: {err}")
    if settings.source is not None:
        fail(p, input_error(settings.source, "source"))
    else:  # silver-to-gold reads DATASET_IN from the database
        fail(p, database_error(settings.db))
        if getattr(settings, "dataset_in") == settings.dataset:
            p.error("DATASET_OUT must not be DATASET_IN: the corrections would mix with the answers they correct")
    for name in ("patterns", "eval"):
        value = getattr(settings, name)
        if value is not None:
            fail(p, input_error(value, f"--{name}"))
    assert settings.output is not None
    fail(p, output_folder_error(settings.output, "--output"))
    positive: Tuple[int, ...] = (
        settings.batch_size,
        settings.queue_size,
        settings.eval_every,
        settings.chunk_size,
        settings.answers_per_question,
        getattr(settings, "per_text", 1),
    )
    if min(positive) < 1 or min(settings.save_every, settings.lease) < 0 or settings.stop_timeout <= 0:
        p.error(
            "--batch-size, --queue-size, --eval-every, --chunk-size, --answers-per-question, --per-text and "
            "--stop-timeout "
            "must be positive, "
            "--save-every and --lease >= 0"
        )
    if settings.feed_overlap and settings.answers_per_question > 1:
        p.error("--answers-per-question goes without --feed-overlap, which gives every session every question")
    return replace(settings, auth=resolve_auth(settings.host, settings.auth))


def resolve_auth(host: str, auth: Optional[str]) -> Optional[str]:
    """The token requests need: `--auth`, else env `SBN_TEACH_TOKEN`, else
    none on loopback and one made up (and printed) off it."""
    auth = auth or os.environ.get(TOKEN_ENV) or None
    if host not in LOOPBACK and not auth:
        auth = secrets.token_urlsafe(16)
        print(
            f"--host {host} is not loopback: requests need a token; made one up (pass --auth or "
            f"set {TOKEN_ENV} to choose it)",
            file=sys.stderr,
        )
    return auth


@dataclass(frozen=True)
class ReviewSettings:
    """What `review` is told: the two datasets and how to serve them."""

    command: ClassVar[str] = "review"
    positionals: ClassVar[Tuple[str, ...]] = ("dataset_in", "dataset")
    hidden: ClassVar[Tuple[str, ...]] = ()

    dataset_in: str = _setting(help="dataset whose sessions' answers are reviewed")
    dataset: str = _setting(help="dataset the reviewed answers go to, one per task (DATASET_OUT)")
    db: Optional[str] = _setting(None, DB_HELP, parse=str)
    show_all: bool = _setting(False, "show the tasks every session agrees on too (default: stored unseen)")
    host: str = _host()
    port: int = _port()
    auth: Optional[str] = _auth()
    lease: float = _setting(300.0, "seconds a task handed to a reviewer stays theirs; then the next one gets it")
    stop_timeout: float = _setting(10.0, "seconds SIGTERM, SIGHUP or Ctrl-C may take")


def parse_review_settings(argv: Sequence[str], prog: str, description: str) -> ReviewSettings:
    """`review`'s settings from a command line, checked."""
    p = make_parser(prog, description, ReviewSettings)  # type: ignore[arg-type]
    settings = ReviewSettings(**vars(p.parse_args(argv)))
    fail(p, database_error(settings.db))
    if settings.dataset == settings.dataset_in:
        p.error("DATASET_OUT must not be DATASET_IN: the reviewed answers would mix with those reviewed")
    if settings.lease < 0 or settings.stop_timeout <= 0:
        p.error("--lease must be >= 0 and --stop-timeout positive")
    return replace(settings, auth=resolve_auth(settings.host, settings.auth))
