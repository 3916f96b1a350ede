"""The decision threshold of a `binary_ner` pipe, chosen on gold dev examples.

A model trained on a few thousand binary answers is under-confident: every
span no answer mentions is pulled towards "no entity", so its entities often
score below 0.5. The threshold changes only decoding, so one prediction of the
dev split gives the entity scores at every candidate threshold. The best one
goes into the pipe's `cfg` (saved with the pipeline) only where it beats the
configured threshold on most bootstrap resamples of the dev docs (paired, so
the two thresholds are scored on the same resample): a dev curve that is flat
within its noise keeps the configured threshold.

In training, `spacy-binary-ner.dev_threshold.v1` is a `[training.before_to_disk]`
callback: the threshold is chosen on the dev corpus with the weights spaCy
evaluates and saves, stored and logged. From its first call on, the choice is
made as each evaluation starts, so the dev score spaCy logs and selects
`model-best` by is the one at the threshold saved with those weights.
"""

import sys
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry, resolve_dot_names

from .pipeline import BinaryNER, find_binary_ner

THRESHOLDS: Tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.1, 0.15, ..., 0.9
CONFIDENCE = 0.9
N_RESAMPLES = 1000


def is_complete(example: Example) -> bool:
    """Whether the reference doc marks every token as inside or outside an
    entity (a complete annotation), so that F1 on it means something."""
    return all(token.ent_iob != 0 for token in example.reference)


def scores_by_threshold(
    pipe: BinaryNER,
    docs: Sequence[Doc],
    scores: Any,
    references: Sequence[Doc],
    thresholds: Sequence[float] = THRESHOLDS,
) -> Dict[float, Dict[str, Any]]:
    """Entity scores (`ents_p`, `ents_r`, `ents_f`, `ents_per_type`, as
    `nlp.evaluate`) of one prediction decoded at each threshold.

    pipe (BinaryNER): The pipe that made `scores`.
    docs (Sequence[Doc]): The docs it predicted, not changed.
    scores: `pipe.predict(docs)`.
    references (Sequence[Doc]): The gold docs, one per doc.
    thresholds (Sequence[float]): The thresholds to decode at.
    RETURNS (Dict[float, Dict[str, Any]]): The scores per threshold, each
        also with "doc_counts": an (n_docs, 3) array of true positives, false
        positives and false negatives per doc.
    """
    saved = {key: pipe.cfg[key] for key in ("threshold", "scores_key", "nested_spans_key")}
    result: Dict[float, Dict[str, Any]] = {}
    try:
        # Only doc.ents is scored: the span groups would be written for nothing.
        pipe.cfg["scores_key"] = pipe.cfg["nested_spans_key"] = None
        for threshold in thresholds:
            pipe.cfg["threshold"] = threshold
            decoded = [doc.copy() for doc in docs]
            pipe.set_annotations(decoded, scores)
            examples = [Example(doc, ref) for doc, ref in zip(decoded, references)]
            result[threshold] = Scorer.score_spans(examples, "ents")
            result[threshold]["doc_counts"] = doc_counts(decoded, references)
    finally:
        pipe.cfg.update(saved)
    return result


def doc_counts(predicted: Sequence[Doc], references: Sequence[Doc]) -> numpy.ndarray:
    """True positives, false positives and false negatives of `doc.ents` per
    doc, matched by character offsets and label.

    RETURNS (numpy.ndarray): An (n_docs, 3) int array.
    """
    counts = numpy.zeros((len(predicted), 3), dtype="int64")
    for i, (doc, ref) in enumerate(zip(predicted, references)):
        pred = {(e.start_char, e.end_char, e.label_) for e in doc.ents}
        gold = {(e.start_char, e.end_char, e.label_) for e in ref.ents}
        counts[i] = (len(pred & gold), len(pred - gold), len(gold - pred))
    return counts


def bootstrap_wins(
    counts: numpy.ndarray, baseline: numpy.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> float:
    """The share of paired bootstrap resamples of the docs on which the
    micro F1 from `counts` is higher than the one from `baseline`.

    counts (numpy.ndarray): (n_docs, 3) counts, as `doc_counts`.
    baseline (numpy.ndarray): The same docs' counts under the other decision.
    RETURNS (float): Between 0 and 1.
    """
    if len(counts) == 0:
        return 0.0
    rng = numpy.random.default_rng(seed)
    wins = 0
    for chunk in range(0, n_resamples, 100):
        index = rng.integers(0, len(counts), size=(min(100, n_resamples - chunk), len(counts)))
        f = [_micro_f(c[index].sum(axis=1)) for c in (counts, baseline)]
        wins += int((f[0] > f[1]).sum())
    return wins / n_resamples


def _micro_f(summed: numpy.ndarray) -> numpy.ndarray:
    tp, fp, fn = summed[:, 0], summed[:, 1], summed[:, 2]
    denominator = 2 * tp + fp + fn
    return numpy.where(denominator > 0, 2 * tp / numpy.maximum(denominator, 1), 0.0)


def best_threshold(
    f_by_threshold: Dict[float, float],
    default: float,
    counts: Optional[Dict[float, numpy.ndarray]] = None,
    confidence: float = CONFIDENCE,
) -> float:
    """The threshold with the highest F1; among equals, the one nearest
    `default` (so a flat curve keeps the configured threshold). With the
    per-doc `counts` of each threshold, the best one is taken only where it
    beats `default` on at least `confidence` of paired bootstrap resamples.

    f_by_threshold (Dict[float, float]): F1 at each threshold, `default` among them.
    default (float): The configured threshold.
    counts (Optional[Dict[float, numpy.ndarray]]): Per-doc counts (`doc_counts`).
    confidence (float): The share of resamples the best must win; 0 takes the best F1.
    RETURNS (float): The threshold.
    """
    best = max(f_by_threshold, key=lambda t: (f_by_threshold[t], -abs(t - default)))
    if counts is None or best == default or confidence <= 0.0:
        return best
    return best if bootstrap_wins(counts[best], counts[default]) >= confidence else default


def scores_at_thresholds(
    nlp: Language,
    examples: Iterable[Example],
    thresholds: Sequence[float],
    *,
    component: Optional[str] = None,
) -> Dict[float, Dict[str, Any]]:
    """Entity scores of the `binary_ner` pipe on gold examples at each
    threshold, from one prediction. The pipe's `cfg` is not changed.

    nlp (Language): The pipeline.
    examples (Iterable[Example]): Examples with complete gold annotations.
    thresholds (Sequence[float]): The thresholds to decode at.
    component (Optional[str]): The component; None for the first `binary_ner`.
    RETURNS (Dict[float, Dict[str, Any]]): The scores per threshold.
    """
    examples = list(examples)
    name, pipe = find_binary_ner(nlp, component)
    incomplete = sum(not is_complete(eg) for eg in examples)
    if incomplete:
        raise ValueError(
            f"{incomplete} of {len(examples)} examples do not mark every token as in or out of an entity: "
            "score thresholds on complete annotations (a gold dev split), not on teach answers."
        )
    docs = [eg.predicted.copy() for eg in examples]
    for other, proc in nlp.pipeline:
        if other == name:
            break
        docs = list(proc.pipe(docs))
    scores = pipe.predict(docs)
    return scores_by_threshold(pipe, docs, scores, [eg.reference for eg in examples], thresholds)


def choose_threshold(
    nlp: Language,
    examples: Iterable[Example],
    *,
    component: Optional[str] = None,
    thresholds: Sequence[float] = THRESHOLDS,
    confidence: float = CONFIDENCE,
) -> Tuple[float, Dict[float, Dict[str, Any]]]:
    """Choose the `binary_ner` decision threshold on gold examples, from one
    prediction. The pipe's `cfg` is not changed.

    nlp (Language): The pipeline.
    examples (Iterable[Example]): Examples with complete gold annotations.
    component (Optional[str]): The component; None for the first `binary_ner`.
    thresholds (Sequence[float]): The candidates; the pipe's own threshold is
        always among them.
    confidence (float): The share of paired bootstrap resamples of the
        examples on which the best candidate must beat the pipe's own
        threshold to be chosen; 0 takes the best F1.
    RETURNS (Tuple[float, Dict[float, Dict[str, Any]]]): The threshold chosen
        (ties: the nearest the pipe's own), and the scores at every candidate.
    """
    name, pipe = find_binary_ner(nlp, component)
    own = pipe.cfg["threshold"]
    by_threshold = scores_at_thresholds(nlp, examples, sorted({*thresholds, own}), component=name)
    f = {t: float(s["ents_f"] or 0.0) for t, s in by_threshold.items()}
    counts = {t: s["doc_counts"] for t, s in by_threshold.items()}
    return best_threshold(f, own, counts, confidence), by_threshold


@registry.callbacks("spacy-binary-ner.dev_threshold.v1")
def create_dev_threshold_callback(
    dev_corpus: str = "corpora.dev",
    thresholds: Optional[List[float]] = list(THRESHOLDS),
    component: Optional[str] = None,
    confidence: float = CONFIDENCE,
) -> Callable[[Language], Language]:
    """A `[training.before_to_disk]` callback: choose the `binary_ner`
    decision threshold on the dev corpus for the weights being saved, store it
    in the pipe's `cfg` and log it. After the first save it makes the choice as
    training evaluates the dev corpus (it wraps `nlp.evaluate`, acting only on
    examples whose texts are the dev corpus's), so the logged dev score and
    `model-best` are at the saved threshold. It does nothing (and says why,
    once) where the pipeline has no `binary_ner` or the dev corpus has no
    complete annotations.

    dev_corpus (str): Dot name of the dev corpus in the training config.
    thresholds (Optional[List[float]]): The candidates; null keeps the pipe's
        configured `threshold` (no choice is made).
    component (Optional[str]): The component; None for the first `binary_ner`.
    confidence (float): The share of paired bootstrap resamples of the dev
        docs on which the best threshold must beat the configured one to
        replace it; 0 takes the best dev F1.
    RETURNS (Callable[[Language], Language]): The callback.
    """
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"dev_threshold confidence must be at least 0 and below 1 (got {confidence})")
    if thresholds is not None:
        bad = [t for t in thresholds if not 0.0 < t < 1.0]
        if bad or not thresholds:
            raise ValueError(f"dev_threshold thresholds must be between 0 and 1 (got {thresholds}); null for none")
    state: Dict[str, Any] = {}

    def choose(nlp: Language, name: str, examples: List[Example]) -> None:
        pipe = nlp.get_pipe(name)
        # Ties go to the threshold the config sets, not to the last choice.
        configured = state.setdefault("configured", pipe.cfg["threshold"])
        pipe.cfg["threshold"] = configured
        best, by_threshold = choose_threshold(
            nlp, examples, component=name, thresholds=thresholds, confidence=confidence
        )
        pipe.cfg["threshold"] = best
        f = {t: float(s["ents_f"] or 0.0) for t, s in by_threshold.items()}
        top = best_threshold(f, configured)
        if top == best:
            print(
                f"{name}: threshold {best:g} chosen on {dev_corpus} "
                f"(ents_f {f[best]:.4f}; {f[configured]:.4f} at the configured {configured:g})",
                flush=True,
            )
        else:
            wins = bootstrap_wins(by_threshold[top]["doc_counts"], by_threshold[configured]["doc_counts"])
            print(
                f"{name}: threshold {configured:g} kept on {dev_corpus} (ents_f {f[configured]:.4f}; "
                f"{f[top]:.4f} at {top:g}, better on {wins:.0%} of {N_RESAMPLES} resamples, "
                f"below the confidence {confidence:.0%})",
                flush=True,
            )

    def watch_evaluations(nlp: Language, name: str, dev_texts: Counter) -> None:
        """Choose the threshold on the dev examples each time training
        evaluates them, before they are decoded: spaCy then logs, and selects
        `model-best` by, the dev score at the threshold saved with the weights,
        not at the one chosen for the weights of the previous evaluation."""
        evaluate = nlp.evaluate

        def evaluate_at_chosen_threshold(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
            examples = list(examples)
            if Counter(eg.reference.text for eg in examples) == dev_texts:
                choose(nlp, name, examples)
                state["chosen"] = True
            return evaluate(examples, **kwargs)

        nlp.evaluate = evaluate_at_chosen_threshold  # type: ignore[method-assign]

    def before_to_disk(nlp: Language) -> Language:
        if thresholds is None or state.get("off"):
            return nlp
        if component is None and not any(isinstance(proc, BinaryNER) for _, proc in nlp.pipeline):
            _off(state, f"no binary_ner component in {nlp.pipe_names}")
            return nlp
        name, _ = find_binary_ner(nlp, component)
        if "examples" not in state:
            (corpus,) = resolve_dot_names(nlp.config.interpolate(), [dev_corpus])
            state["examples"] = list(corpus(nlp))
        examples = state["examples"]
        if not examples or not all(is_complete(eg) for eg in examples):
            _off(state, f"{dev_corpus} has no complete annotations")
            return nlp
        if state.get("watching") is not nlp:
            # From the next evaluation on, the threshold is chosen as the dev
            # split is evaluated; until then (and for a save with no evaluation
            # just before it, as spaCy's last), it is chosen here.
            watch_evaluations(nlp, name, Counter(eg.reference.text for eg in examples))
            state["watching"] = nlp
        if not state.pop("chosen", False):
            choose(nlp, name, examples)
        return nlp

    return before_to_disk


def _off(state: Dict[str, Any], reason: str) -> None:
    state["off"] = True
    print(f"dev_threshold: {reason}: the decision threshold stays as configured", file=sys.stderr, flush=True)
