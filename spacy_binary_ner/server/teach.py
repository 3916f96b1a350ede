"""`python -m spacy_binary_ner teach DATASET PIPELINE SOURCE --label A,B`: the teach server.

Serves a page where people answer accept / reject / ignore about the spans the
model proposes (or, with `--task textcat`, the text categories:
`teach_textcat`), while the model learns from the answers; answers go to a
database (SQLite file by default, PostgreSQL by URL) and the model is saved
under `--output`, so a restart resumes both.
"""

import contextlib
import gzip
import importlib
import signal
import sys
import time
from dataclasses import fields
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import spacy
from spacy.language import Language
from spacy.util import fix_random_seed, load_config, load_model_from_config
from thinc.api import Optimizer

from ..cli_args import fail, input_error, language_error
from ..cli_args import pipeline_error as cli_pipeline_error
from ..data import iter_jsonl, records_to_examples
from ..loop import LOOP_LEARN_RATE, AnnotationLoop, PatternMatcher, PatternSchedule, initialize_pipeline, set_hashes
from ..loop.correct import ANSWERS_KEY, Consistent
from ..pipeline import find_binary_ner
from ..records import RecordError, iter_lines, jsonl_files
from .answers import storable_hash
from .engine import UNSERVABLE_KEY, EngineSettings, LoopParts, json_safe, load_state
from .settings import Settings, TeachSettings, TextcatTeachSettings, make_parser, parse_settings
from .storage import Storage, database_url
from .worker import EngineError, Teacher

# The signals that stop the server as Ctrl-C does: learn, save, exit 0.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def read_source(path: Path) -> Iterator[Dict[str, Any]]:
    """Tasks from a JSONL / `.jsonl.gz` file in our format (`text`, optional
    `tokens` and `meta`; spans and answers are dropped) or a plain text file
    (one text a line), read lazily. Blank texts are skipped; a record JSON
    cannot carry (NaN, Infinity) is yielded as `{"_unservable": "FILE:LINE"}`,
    for the engine to count and log."""
    name = path.name
    if path.is_dir() or name.endswith((".jsonl", ".jsonl.gz", ".json")):
        for file in jsonl_files(path):
            for line_no, record in iter_lines(file):
                if isinstance(record, RecordError) and record.reason == "non-finite number":
                    # Counted and logged by the engine, which skips it.
                    yield {UNSERVABLE_KEY: f"{file}:{line_no}"}
                    continue
                if isinstance(record, ValueError):
                    raise ValueError(f"{file}:{line_no}: {record}")
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"{file}:{line_no}: a source record needs a string `text` ({str(record)[:80]})")
                if not record["text"].strip():
                    continue
                if not json_safe(record):
                    yield {UNSERVABLE_KEY: f"{file}:{line_no}"}
                    continue
                task: Dict[str, Any] = {"text": record["text"]}
                for key in ("tokens", "meta"):
                    if record.get(key) is not None:
                        task[key] = record[key]
                try:
                    given = storable_hash(record.get("_input_hash"))
                except ValueError as err:
                    raise ValueError(f"{file}:{line_no}: {err}") from None
                if given is not None:
                    task["_input_hash"] = given
                yield set_hashes(task)
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf8") as f:
        for line in f:
            text = line.rstrip("\r\n")
            if text.strip():
                yield set_hashes({"text": text})


def read_answered(url: str, dataset: str) -> Iterator[Dict[str, Any]]:
    """`silver-to-gold`'s source: each text answered in a dataset, once, in
    the order first answered, with its latest answers (one per `_task_hash`)
    under `_answers` and the tokens of its first answer that has them.

    url (str): The database.
    dataset (str): The dataset of binary answers.
    YIELDS (Dict[str, Any]): Tasks with `text`, `_input_hash`, `_answers`
        and, where given, `tokens`.
    """
    storage = Storage(url)
    try:
        by_text: Dict[int, Dict[str, Any]] = {}
        for stored in storage.latest(dataset):
            answer = stored.task
            task = by_text.setdefault(
                int(answer["_input_hash"]),
                {"text": answer["text"], "_input_hash": answer["_input_hash"], ANSWERS_KEY: []},
            )
            if "tokens" not in task and answer.get("tokens") is not None:
                task["tokens"] = answer["tokens"]
            task[ANSWERS_KEY].append(answer)
    finally:
        storage.close()
    yield from by_text.values()


def best_consistent() -> Consistent:
    """`silver-to-gold`'s analysis of a text: `consistent.best_consistent`."""
    from ..consistent import best_consistent as function

    return function  # type: ignore[return-value]


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
    try:
        _, pipe = find_binary_ner(nlp)
    except ValueError as err:
        raise ValueError(f"The pipeline {where}: {err}") from None
    for label in labels:
        if label not in pipe.labels:
            pipe.add_label(label)
            print(f"Added the label {label} to the pipeline {where} (it had {', '.join(pipe.labels[:-1])})")


def _servable(path: Path, n: int) -> list:
    """The first `n` tasks of a source that can be served."""
    return list(islice((task for task in read_source(path) if UNSERVABLE_KEY not in task), n))


def _source(settings: TeachSettings) -> Callable[[], Iterator[Dict[str, Any]]]:
    """The settings' incoming tasks: the source file, or for `silver-to-gold`
    the texts of `dataset_in`."""
    if settings.source is None:
        return partial(read_answered, database_url(settings.db), getattr(settings, "dataset_in"))
    return partial(read_source, settings.source)


def _samples(settings: TeachSettings, n: int) -> List[Dict[str, Any]]:
    """The first `n` servable texts of the settings' source."""
    if settings.source is None:
        return list(islice(_source(settings)(), n))
    return _servable(settings.source, n)


def build_loop(settings: TeachSettings) -> LoopParts:
    """The annotation loop for `teach` settings, with its F1 function
    (`--eval`) and the state saved with the model; called in the engine process.

    RETURNS (LoopParts): `(loop, evaluate or None, state)`.
    """
    labels = settings.labels
    sample = _samples(settings, 10)
    nlp, optimizer, state = load_pipeline(settings.pipeline, labels, sample, settings.output, seed=settings.seed)
    matcher = PatternMatcher.from_file(nlp, settings.patterns) if settings.patterns else None
    loop = AnnotationLoop(
        nlp,
        sorter=settings.sorter,
        patterns=matcher,
        schedule=PatternSchedule(
            ratio=settings.pattern_ratio,
            lookahead=settings.pattern_lookahead,
            max_answers=settings.pattern_max_answers,
        ),
        optimizer=optimizer,
        replay=settings.replay,
        chunk_size=settings.chunk_size,
        seed=settings.seed,
    )
    evaluate = None
    if settings.eval is not None:
        gold = [r for r in iter_jsonl(settings.eval)]
        examples = records_to_examples(nlp, gold, complete=True, labels=labels)

        def evaluate() -> float:
            with loop.averaged_params():
                return float(nlp.evaluate(examples)["ents_f"] or 0.0)

    return loop, evaluate, state


_FIELDS = {f.name for f in fields(TeachSettings)}


def build_teacher(settings: TeachSettings) -> Teacher:
    """The server's engine for `teach`, `correct` or `silver-to-gold`
    settings (see `parse_args`): starts the learning engine process and waits
    until it is ready."""
    labels = settings.labels
    if not _samples(settings, 1):
        where = settings.source or f"the dataset {getattr(settings, 'dataset_in')!r} in {database_url(settings.db)}"
        raise ValueError(f"{where}: no texts to ask about")
    assert settings.output is not None
    settings.output.mkdir(parents=True, exist_ok=True)
    # The engine's settings that are teach settings (fields), under the same names.
    shared = {f.name: getattr(settings, f.name) for f in fields(EngineSettings) if f.name in _FIELDS}
    engine_settings = EngineSettings(
        make_loop=partial(_loop_builder(settings), settings),
        make_source=_source(settings),
        storage_url=database_url(settings.db),
        questions=settings.questions,
        learns=settings.learns,
        labels=tuple(labels),
        consistent=best_consistent() if settings.command == "silver-to-gold" else None,
        **shared,
    )
    return Teacher(
        engine_settings,
        feed_overlap=settings.feed_overlap,
        lease=settings.lease,
        answers_per_question=settings.answers_per_question,
        allow_new_tasks=settings.allow_new_tasks,
    )


def _loop_builder(settings: TeachSettings) -> Callable[[Any], LoopParts]:
    """What builds the engine's loop: `build_loop`, or for text categories
    `teach_textcat.build_textcat_loop`."""
    if settings.questions == "textcat":
        from .teach_textcat import build_textcat_loop

        return build_textcat_loop
    return build_loop


def parse_args(argv: Sequence[str], cls: Optional[Type[Settings]] = None) -> Settings:
    """A command line as settings of class `cls`; by default `teach`'s, or
    `TextcatTeachSettings` where it says `--task textcat`."""
    if cls is None:
        cls = TextcatTeachSettings if _task(argv) == "textcat" else TeachSettings  # type: ignore[assignment]
    assert cls is not None
    module = importlib.import_module(_MODULES.get(cls.command, __name__))
    return parse_settings(argv, _prog(cls), (module.__doc__ or "").split("\n\n")[0], cls)


def _task(argv: Sequence[str]) -> Optional[str]:
    """The value of `--task` in a command line, if given."""
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return None


# The modules of the commands served by `run`, for their descriptions.
_MODULES = {"correct": "spacy_binary_ner.server.correct", "silver-to-gold": "spacy_binary_ner.server.silver_to_gold"}


def _prog(cls: Type[TeachSettings]) -> str:
    return f"python -m spacy_binary_ner {cls.command}"


def _serve(app: Any, settings: TeachSettings, on_signal: Any) -> Optional[float]:
    """Serve until SIGINT, SIGTERM or SIGHUP. Open requests get a few
    seconds to finish (a second signal cuts that short).
    RETURNS (Optional[float]): When the first signal came (`time.monotonic`)."""
    import uvicorn

    stopped_at = []

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own handler would raise the signal again after its
            # shutdown: SIGTERM would then end the process before the save.
            before = {sig: signal.signal(sig, self.stop) for sig in STOP_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

        def stop(self, sig: int, frame: Any) -> None:
            if self.should_exit:
                self.force_exit = True
                return
            stopped_at.append(time.monotonic())
            self.should_exit = True
            on_signal(signal.Signals(sig).name)

    grace = min(5.0, settings.stop_timeout / 6)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=max(1, int(grace))
    )
    Server(config).run()
    return stopped_at[0] if stopped_at else None


def pipeline_error(settings: TeachSettings) -> Optional[str]:
    """What is wrong with PIPELINE, or None: `blank:LANG` needs a language
    spaCy has, a `.cfg` an existing file, anything else a pipeline folder or
    package. Not checked on a restart, which loads the model saved under
    `--output` instead.

    settings (TeachSettings): The parsed settings.
    RETURNS (Optional[str]): The message, naming the argument, or None.
    """
    if (settings.model_dir / "config.cfg").exists():
        return None
    spec = settings.pipeline
    if spec.startswith("blank:"):
        return language_error(spec.split(":", 1)[1], "pipeline")
    if spec.endswith(".cfg"):
        return input_error(spec, "pipeline")
    return cli_pipeline_error(spec, "pipeline")


def main(argv: Sequence[str]) -> int:
    return run(parse_args(argv))


def run(settings: TeachSettings) -> int:
    """Serve `teach`, `correct` or `silver-to-gold` until a stop signal.

    settings (TeachSettings): The command's settings, from `parse_args`.
    RETURNS (int): The exit status.
    """
    from .app import create_app

    name = settings.command
    fail(make_parser(_prog(type(settings)), "", type(settings)), pipeline_error(settings))
    try:
        teacher = build_teacher(settings)
    except (ValueError, OSError, EngineError) as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 1
    app = create_app(teacher, token=settings.auth)
    url = f"http://{settings.host}:{settings.port}/?session=default" + (
        f"&token={settings.auth}" if settings.auth else ""
    )
    model = settings.model_dir
    if (model / "config.cfg").exists():
        where = f"model loaded from {model}, saved there"
    else:
        where = f"the model will be saved to {model}"
    relearn = f", {teacher.n_resumed} to re-learn in the background" if teacher.n_resumed else ""
    print(
        f"{name}: dataset {settings.dataset!r}, {teacher.n_stored} answers stored{relearn}; {where}",
        flush=True,
    )
    print(f"{name}: open {url}  (Ctrl-C, SIGTERM or SIGHUP saves the model and stops)", flush=True)
    why = []

    def on_signal(signal_name: str) -> None:
        why.append(signal_name)
        teacher.stop_taking_answers()
        print(f"{name}: {signal_name}: no more answers taken; learning the answers left, then saving", flush=True)

    began = _serve(app, settings, on_signal)
    left = settings.stop_timeout - (time.monotonic() - began if began is not None else 0.0)
    clean = teacher.close(save=True, timeout=max(1.0, left - 1.0))
    if not clean:
        print(f"{name}: stopped; the engine did not stop cleanly: {teacher.error or 'killed'}", file=sys.stderr)
        return 1
    print(f"{name}: stopped ({', '.join(why) or 'server closed'}); model saved to {model}", flush=True)
    return 0
