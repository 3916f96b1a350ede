"""The `binary_rel` pipe: relations between entities learned from
accept/reject answers about one (head, child, label) each, and from complete
relation annotations.

It runs after `binary_ner` or any component that sets `doc.ents` or a span
group (`spans_key`): the candidates are the ordered pairs of those entities
at most `max_distance` tokens apart whose entity labels allow at least one
relation label (`label_pairs`); each gets one probability per label. The
predictions are written to

- `doc._.rel`: `{(head_start, child_start): {label: probability}}` for every
  candidate pair, as spaCy's relation-extraction tutorial writes them (two
  entities with the same start, possible with nested spans, share a key: the
  later pair wins);
- two span groups, `doc.spans[output_key + "_head"]` and `doc.spans[output_key
  + "_child"]`, holding the two entities of every candidate pair at the same
  index, and on the head group `attrs["labels"]` and `attrs["scores"]`, one
  row of probabilities per pair. `doc._.rel` is read from these groups:
  span groups and their `attrs` are what `DocBin` and `Doc.to_bytes` keep
  without `store_user_data`, while a dict keyed by tuples cannot be written
  to msgpack. `predicted_relations(doc)` lists the relations above the
  threshold.

This module knows Thinc models only; the architectures are in
`spacy_binary_ner.rel.model`, the candidates and the loss in
`spacy_binary_ner.rel.targets` and the settings in
`spacy_binary_ner.rel.settings`.
"""

import copy
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import PRFScore
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d, Ints2d

from ..pipeline import DEFAULT_MODEL
from ..textcat.pipe import BinaryTextcat
from .settings import RelSettings
from .targets import (
    Pair,
    allowed_labels,
    answered_label_pairs,
    build_rel_targets,
    candidate_pairs,
    doc_answers,
    doc_entities,
    rel_loss,
    rel_probabilities,
)

# The tok2vec is binary_ner's default one.
DEFAULT_REL_MODEL_CONFIG = """
[model]
@architectures = "spacy-binary-ner.RelScorer.v1"
hidden_width = 128
embed_width = 16
dropout = 0.1
"""
DEFAULT_REL_MODEL = Config().from_str(DEFAULT_REL_MODEL_CONFIG)["model"]
DEFAULT_REL_MODEL["tok2vec"] = copy.deepcopy(DEFAULT_MODEL["tok2vec"])
SCORER = "spacy-binary-ner.rel_scorer.v1"
Relation = Tuple[Span, Span, str, float]

if not Doc.has_extension("rel"):
    Doc.set_extension("rel", getter=lambda doc: relation_scores(doc))


@registry.scorers(SCORER)
def make_rel_scorer() -> Callable[..., Dict[str, Any]]:
    """Micro precision, recall and F1 of the relations predicted above the
    pipe's threshold against the references' relations (passed the pipe's
    `cfg`).

    RETURNS (Callable[..., Dict[str, Any]]): The scoring function.
    """
    return score_relations


def score_relations(examples: Iterable[Example], **cfg: Any) -> Dict[str, Any]:
    """Score the predicted relations against the accepted or annotated
    relations of the references. A relation is right if both entities have
    the same character offsets as a reference relation's, and the same label.

    examples (Iterable[Example]): The examples.
    **cfg: The pipe's `cfg`: `threshold` and `output_key` are read.
    RETURNS (Dict[str, Any]): `rel_micro_p`, `rel_micro_r`, `rel_micro_f` and
        `rel_f_per_type` (per label, `p`, `r` and `f`).
    """
    total = PRFScore()
    per_label: Dict[str, PRFScore] = {}
    for eg in examples:
        gold = _gold_relations(eg.reference)
        found = {
            (h.start_char, h.end_char, c.start_char, c.end_char, label)
            for h, c, label, _ in predicted_relations(eg.predicted, cfg.get("threshold", 0.5), cfg.get("output_key"))
        }
        for label in {key[4] for key in gold | found}:
            score = per_label.setdefault(label, PRFScore())
            score.score_set({k for k in found if k[4] == label}, {k for k in gold if k[4] == label})
        total.score_set(found, gold)
    return {
        "rel_micro_p": total.precision,
        "rel_micro_r": total.recall,
        "rel_micro_f": total.fscore,
        "rel_f_per_type": {label: s.to_dict() for label, s in sorted(per_label.items())},
    }


def _gold_relations(doc: Doc) -> set:
    """The accepted or annotated relations of a reference doc, in character offsets."""
    return {
        (doc[hs].idx, doc[he - 1].idx + len(doc[he - 1]), doc[cs].idx, doc[ce - 1].idx + len(doc[ce - 1]), label)
        for ((hs, he, cs, ce), label), value in doc_answers(doc).items()
        if value == 1.0
    }


def relation_scores(doc: Doc, output_key: Optional[str] = None) -> Dict[Tuple[int, int], Dict[str, float]]:
    """`doc._.rel`: every candidate pair's probabilities, by the token starts
    of its head and child.

    doc (Doc): A doc the pipe annotated.
    output_key (Optional[str]): The pipe's `output_key`; the default one if None.
    RETURNS (Dict[Tuple[int, int], Dict[str, float]]): Per (head start,
        child start), the probability of each label.
    """
    out: Dict[Tuple[int, int], Dict[str, float]] = {}
    for head, child, labels, row in _scored_pairs(doc, output_key):
        out[(head.start, child.start)] = dict(zip(labels, row))
    return out


def predicted_relations(doc: Doc, threshold: float = 0.5, output_key: Optional[str] = None) -> List[Relation]:
    """The relations predicted at or above a threshold.

    doc (Doc): A doc the pipe annotated.
    threshold (float): Smallest probability.
    output_key (Optional[str]): The pipe's `output_key`; the default one if None.
    RETURNS (List[Relation]): (head entity, child entity, label, probability).
    """
    return [
        (head, child, label, p)
        for head, child, labels, row in _scored_pairs(doc, output_key)
        for label, p in zip(labels, row)
        if p >= threshold
    ]


def _scored_pairs(doc: Doc, output_key: Optional[str]) -> Iterable[Tuple[Span, Span, List[str], List[float]]]:
    key = output_key or RelSettings.output_key
    if f"{key}_head" not in doc.spans:
        return []
    heads = doc.spans[f"{key}_head"]
    return zip(heads, doc.spans[f"{key}_child"], [heads.attrs["labels"]] * len(heads), heads.attrs["scores"])


@Language.factory(
    "binary_rel",
    assigns=["doc._.rel", "doc.spans"],
    default_config={"model": DEFAULT_REL_MODEL, **RelSettings().to_dict(), "scorer": {"@scorers": SCORER}},
    default_score_weights={"rel_micro_f": 1.0, "rel_micro_p": None, "rel_micro_r": None, "rel_f_per_type": None},
)
def make_binary_rel(
    nlp: Language,
    name: str,
    model: Model,
    threshold: float,
    unknown_weight: float,
    unknown_mask_above: Optional[float],
    exclusive_labels: bool,
    max_distance: int,
    spans_key: Optional[str],
    label_pairs: Optional[Dict[str, List[List[str]]]],
    output_key: str,
    scorer: Optional[Callable],
) -> "BinaryRel":
    """Create a `binary_rel` component. Its arguments but the model and the
    scorer are the pipe's settings, described in `RelSettings`.

    model (Model): One logit per candidate pair and label, e.g.
        spacy-binary-ner.RelScorer.v1.
    scorer (Optional[Callable]): The scoring method.
    RETURNS (BinaryRel): The component.
    """
    settings = RelSettings.pick(locals())
    return BinaryRel(nlp.vocab, model, name, settings=settings, scorer=scorer)


class BinaryRel(TrainablePipe):
    """Relations between entities from binary (accept/reject/ignore) answers
    and complete annotations: one sigmoid per candidate pair and label."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "binary_rel",
        *,
        settings: RelSettings = RelSettings(),
        scorer: Optional[Callable] = None,
    ) -> None:
        """Initialize the component; its `cfg` (saved with it) holds the labels and the settings.

        vocab (Vocab): The shared vocabulary.
        model (Model): One logit per candidate pair and label.
        name (str): The component's name.
        settings (RelSettings): The settings, e.g. `RelSettings(max_distance=20)`.
        scorer (Optional[Callable]): The scoring method.
        """
        self.vocab, self.model, self.name, self.scorer = vocab, model, name, scorer
        self.cfg: Dict[str, Any] = {"labels": [], **settings.to_dict()}

    # The labels as `binary_textcat` keeps them: `cfg["labels"]`, in the
    # model's column order, added before initialization.
    labels = BinaryTextcat.labels
    label_data = BinaryTextcat.label_data
    add_label = BinaryTextcat.add_label

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Set the labels and, unless configured, the allowed entity label
        pairs from the training data, then size and initialize the model.

        get_examples (Callable[[], Iterable[Example]]): Training examples.
        nlp (Language): The pipeline (unused).
        labels (Optional[List[str]]): The labels, e.g. from `spacy init labels`.
        """
        validate_get_examples(get_examples, "BinaryRel.initialize")
        found_labels, found_pairs = answered_label_pairs(get_examples())
        for label in found_labels if labels is None else labels:
            self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"The '{self.name}' component has no relation label. "
                f"Pass labels in [initialize.components.{self.name}] or train on answered data."
            )
        if self.cfg["label_pairs"] is None:
            self.cfg["label_pairs"] = found_pairs
        self.model.set_dim("nO", len(self.labels))
        examples = list(islice(get_examples(), 10))
        docs = [eg.predicted for eg in examples]
        self.model.initialize(X=(docs, [self._training_pairs(eg)[1] for eg in examples]))

    def _pairs(self, entities: Iterable[Tuple[int, int, str]]) -> Tuple[List[Pair], numpy.ndarray]:
        return candidate_pairs(entities, self.cfg["max_distance"], self.labels, self.cfg["label_pairs"])

    def _as_array(self, pairs: Sequence[Pair]) -> Ints2d:
        return self.model.ops.asarray2i(numpy.array(pairs, dtype="int32").reshape(len(pairs), 4))

    def candidates(self, doc: Doc) -> Tuple[List[Tuple[Span, Span]], numpy.ndarray]:
        """The candidate pairs of a doc's entities (`spans_key`, or `doc.ents`).

        doc (Doc): The doc.
        RETURNS (Tuple[List[Tuple[Span, Span]], numpy.ndarray]): The (head,
            child) entities, and whether each label is allowed for each pair.
        """
        key = self.cfg["spans_key"]
        entities = list(doc.spans[key]) if key is not None and key in doc.spans else list(doc.ents)
        pairs, allowed = self._pairs((e.start, e.end, e.label_) for e in entities)
        first = {}
        for e in entities:
            first.setdefault((e.start, e.end), e)
        return [(first[p[:2]], first[p[2:]]) for p in pairs], allowed

    def predict(self, docs: Iterable[Doc]) -> Tuple[List[List[Tuple[Span, Span]]], numpy.ndarray, Floats2d]:
        """Score every candidate pair of every doc.

        docs (Iterable[Doc]): The docs.
        RETURNS (Tuple[List[List[Tuple[Span, Span]]], numpy.ndarray, Floats2d]):
            Each doc's (head, child) pairs, the allowed labels of every pair,
            and the logits, one row per pair of all docs in order.
        """
        docs = list(docs)
        found = [self.candidates(doc) for doc in docs]
        spans = [pairs for pairs, _ in found]
        allowed = numpy.concatenate([a for _, a in found]) if found else numpy.zeros((0, len(self.labels)), bool)
        if not len(allowed):
            return spans, allowed, self.model.ops.alloc2f(0, len(self.labels))
        arrays = [self._as_array([(h.start, h.end, c.start, c.end) for h, c in pairs]) for pairs in spans]
        return spans, allowed, self.model.predict((docs, arrays))

    def set_annotations(
        self, docs: Iterable[Doc], scores: Tuple[List[List[Tuple[Span, Span]]], numpy.ndarray, Floats2d]
    ) -> None:
        """Write every candidate pair and its probabilities to the span groups
        that `doc._.rel` reads (the module docstring)."""
        spans, allowed, logits = scores
        probs = rel_probabilities(self.model.ops.to_numpy(logits), allowed)
        row = 0
        key = self.cfg["output_key"]
        for doc, pairs in zip(docs, spans):
            doc.spans[f"{key}_head"] = [h for h, _ in pairs]
            doc.spans[f"{key}_child"] = [c for _, c in pairs]
            doc.spans[f"{key}_head"].attrs["labels"] = list(self.labels)
            doc.spans[f"{key}_head"].attrs["scores"] = probs[row : row + len(pairs)].round(6).tolist()
            row += len(pairs)

    def _training_pairs(self, eg: Example) -> Tuple[List[Pair], Ints2d, numpy.ndarray]:
        """An example's pairs in training: the candidates among the reference's
        entities, and every answered pair; in reference token offsets, in
        predicted token offsets, and their allowed labels."""
        ref = eg.reference
        entities = doc_entities(ref, self.cfg["spans_key"])
        pairs, allowed = self._pairs((e.start, e.end, e.label_) for e in entities)
        known = set(pairs)
        labels_at: Dict[Tuple[int, int], List[str]] = {}
        for e in entities:
            labels_at.setdefault((e.start, e.end), []).append(e.label_)
        extra = sorted({pair for pair, _ in doc_answers(ref)} - known)
        if extra:
            pairs = pairs + extra
            rows = [
                allowed_labels(labels_at.get(p[:2], []), labels_at.get(p[2:], []), self.labels, self.cfg["label_pairs"])
                for p in extra
            ]
            allowed = numpy.concatenate([allowed, numpy.array(rows, dtype=bool)])
        return pairs, self._as_array([_to_predicted(eg, p) for p in pairs]), allowed

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples: the candidate pairs of each
        reference's entities and every answered pair.

        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): The losses so far, updated in place.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "BinaryRel.update")
        examples = list(examples)
        if not any(len(eg.predicted) if eg.predicted else 0 for eg in examples):
            return losses
        found = [self._training_pairs(eg) for eg in examples]
        if not sum(len(pairs) for pairs, _, _ in found):
            return losses
        set_dropout_rate(self.model, drop)
        logits, backprop = self.model.begin_update(([eg.predicted for eg in examples], [a for _, a, _ in found]))
        loss, d_logits = self._loss(examples, found, logits)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _loss(
        self, examples: List[Example], found: List[Tuple[List[Pair], Ints2d, numpy.ndarray]], logits: Floats2d
    ) -> Tuple[float, Floats2d]:
        ops = self.model.ops
        allowed = numpy.concatenate([a for _, _, a in found])
        truths, weights = build_rel_targets(
            examples,
            [p for p, _, _ in found],
            allowed,
            self.labels,
            self.cfg["unknown_weight"],
            self.cfg["exclusive_labels"],
            rel_probabilities(ops.to_numpy(logits), allowed),
            self.cfg["unknown_mask_above"],
        )
        loss, d_logits = rel_loss(ops.to_numpy(logits), truths, weights)
        return loss, ops.asarray2f(d_logits)

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        """The weighted loss of logits for the examples' training pairs (see
        `spacy_binary_ner.rel.targets`).

        examples (Iterable[Example]): The batch.
        scores (Floats2d): The model's logits for the batch's training pairs.
        RETURNS (Tuple[float, Floats2d]): The loss and its gradient for the scores.
        """
        examples = list(examples)
        return self._loss(examples, [self._training_pairs(eg) for eg in examples], scores)


def _to_predicted(eg: Example, pair: Pair) -> Pair:
    """A pair's token offsets on the predicted doc (the same where both docs
    have the same tokens, as the reader makes them)."""
    ref, pred = eg.reference, eg.predicted
    if [t.idx for t in ref] == [t.idx for t in pred]:
        return pair
    out = []
    for start, end in (pair[:2], pair[2:]):
        span = pred.char_span(ref[start].idx, ref[end - 1].idx + len(ref[end - 1]), alignment_mode="expand")
        out.extend((span.start, span.end))
    return tuple(out)  # type: ignore[return-value]
