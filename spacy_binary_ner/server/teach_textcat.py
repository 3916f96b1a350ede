"""`teach --task textcat`: the pipeline with a `binary_textcat` and its
`TextcatLoop`, built in the learning engine's process.

The rest of the server is `teach`'s: storage, sessions, leases, signed
questions, saving and re-learning after a restart; the answers are checked by
`answers.read_textcat_answer`.
"""

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.util import fix_random_seed, load_config, load_model_from_config

from ..textcat.loop import TextcatLoop, accuracy
from ..textcat.reader import TextcatReader
from .engine import LoopParts, load_state
from .settings import TextcatTeachSettings

FACTORY = "binary_textcat"


def find_binary_textcat(nlp: Language) -> str:
    """The name of the pipeline's `binary_textcat` component.

    RAISES (ValueError): It has none.
    """
    for name in nlp.component_names:
        if nlp.get_pipe_meta(name).factory == FACTORY:
            return name
    raise ValueError(f"it has no {FACTORY} component (its components: {', '.join(nlp.component_names) or 'none'})")


def load_textcat_pipeline(
    spec: str, labels: Sequence[str], exclusive: bool, output: Optional[Path], seed: int = 0
) -> Tuple[Language, str, Dict]:
    """The pipeline to teach: the model saved under `output` if there is one
    (a restart), else `blank:LANG` (a new `binary_textcat`, exclusive if
    asked), a `.cfg` config (initialized with `labels`), or a trained
    pipeline (folder or package), whose labels must include `labels`.

    spec (str): The PIPELINE argument.
    labels (Sequence[str]): The labels being annotated.
    exclusive (bool): Whether a new pipe's labels exclude each other.
    output (Optional[Path]): The `--output` folder.
    seed (int): The random seed.
    RETURNS (Tuple[Language, str, Dict]): The pipeline, its component's name
        and the saved state (`{}` for a new model).
    """
    fix_random_seed(seed)
    for saved in (output / "model", output / "model.old") if output is not None else ():
        if (saved / "config.cfg").exists() and load_state(saved):
            return _trained(spacy.load(saved), labels, str(saved)) + (load_state(saved),)
    if spec.startswith("blank:"):
        nlp = spacy.blank(spec.split(":", 1)[1])
        nlp.add_pipe(FACTORY, config={"exclusive": exclusive})
        return _initialized(nlp, FACTORY, labels), FACTORY, {}
    if spec.endswith(".cfg"):
        config = load_config(spec)
        config["system"]["seed"] = seed
        nlp = load_model_from_config(config, auto_fill=True)
        try:
            name = find_binary_textcat(nlp)
        except ValueError as err:
            raise ValueError(f"The config {spec}: {err}") from None
        return _initialized(nlp, name, labels), name, {}
    return _trained(spacy.load(spec), labels, spec) + ({},)


def _initialized(nlp: Language, name: str, labels: Sequence[str]) -> Language:
    nlp.config["initialize"]["components"][name] = {"labels": list(labels)}
    nlp.initialize()
    return nlp


def _trained(nlp: Language, labels: Sequence[str], where: str) -> Tuple[Language, str]:
    try:
        name = find_binary_textcat(nlp)
    except ValueError as err:
        raise ValueError(f"The pipeline {where}: {err}") from None
    missing = [label for label in labels if label not in nlp.get_pipe(name).labels]
    if missing:
        raise ValueError(
            f"The pipeline {where}: its {name} has no label {', '.join(missing)} (it has "
            f"{', '.join(nlp.get_pipe(name).labels)}): a trained text classifier's labels are fixed; "
            "start from blank:LANG or a .cfg to teach new ones"
        )
    return nlp, name


def gold_score(nlp: Language, name: str, path: Path, labels: Sequence[str]) -> Callable[[], float]:
    """The score on a gold file of complete `cats` that the page shows as
    F1: accuracy for exclusive labels (share of texts whose top category is
    a gold one), else macro-F1 (the component's scorer).

    RETURNS (Callable[[], float]): Computes the score with the current weights.
    """
    reader = TextcatReader(nlp, labels=list(labels))
    reader.read_path(path, complete=True)
    examples = reader.examples()
    texts: List[str] = [eg.reference.text for eg in examples]
    gold = [dict(eg.reference.cats) for eg in examples]

    def score() -> float:
        if nlp.get_pipe(name).exclusive:
            return accuracy(nlp, texts, gold)
        return float(nlp.evaluate(examples)["cats_macro_f"] or 0.0)

    return score


def build_textcat_loop(settings: TextcatTeachSettings) -> LoopParts:
    """The text-category loop for `teach --task textcat` settings, with its
    score function (`--eval`) and the state saved with the model; called in
    the engine process.

    RETURNS (LoopParts): `(loop, evaluate or None, state)`.
    """
    labels = settings.labels
    nlp, name, state = load_textcat_pipeline(
        settings.pipeline, labels, settings.exclusive, settings.output, seed=settings.seed
    )
    loop = TextcatLoop(
        nlp,
        name,
        choice=settings.choice,
        sorter=settings.sorter,
        per_text=settings.per_text,
        chunk_size=settings.chunk_size,
        replay=settings.replay,
        seed=settings.seed,
    )
    evaluate = gold_score(nlp, name, settings.eval, labels) if settings.eval is not None else None
    return loop, evaluate, state
