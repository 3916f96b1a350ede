"""The `binary_ner` pipe: entities learned from accept/reject answers.

This module knows Thinc models only; the architecture is in
`spacy_binary_ner.models`, the loss targets in `spacy_binary_ner.targets`, the
settings in `spacy_binary_ner.pipe_settings` and the decoding of scores into
entities in `spacy_binary_ner.decode`.
"""

import contextlib
import dataclasses
import warnings
from collections import Counter
from itertools import islice
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy
from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

from .about import __version__
from .decode import annotate
from .pipe_settings import PipeSettings
from .records import v2_label_error
from .targets import build_targets

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-binary-ner.SpanScorer.v1"
hidden_width = 128
max_span_length = 10
lstm_width = 128
lstm_depth = 1
dropout = 0.1

[model.tok2vec]
@architectures = "spacy.Tok2Vec.v2"

[model.tok2vec.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 96
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 1000, 2500, 2500]
include_static_vectors = false

[model.tok2vec.encode]
@architectures = "spacy.MaxoutWindowEncoder.v2"
width = 96
depth = 4
window_size = 1
maxout_pieces = 3
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

INITIAL_PRIOR = 0.01
# The settings as the component was built are kept in `cfg[CONFIG_SETTINGS]`,
# saved with it (see `BinaryNER._given_settings_apply`).
CONFIG_SETTINGS = "config_settings"


@Language.factory(
    "binary_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        **PipeSettings().to_dict(),
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={
        "ents_f": 1.0,
        "ents_p": 0.0,
        "ents_r": 0.0,
        "ents_per_type": None,
    },
)
def make_binary_ner(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    threshold: float,
    unknown_weight: float,
    unknown_decay: float,
    unknown_mask_above: Optional[float],
    pseudo_above: Optional[float],
    pseudo_weight: float,
    weak_weight: float,
    weak_until: Optional[float],
    weak_spans_key: str,
    incorrect_spans_key: str,
    scores_key: Optional[str],
    candidates_threshold: float,
    nested_spans_key: Optional[str],
    overwrite_ents: bool,
    scorer: Optional[Callable],
) -> "BinaryNER":
    """Create a `binary_ner` component. Its arguments but the model and the
    scorer are the pipe's settings, described in `PipeSettings`.

    model (Model[List[Doc], Floats2d]): A span scorer, e.g.
        spacy-binary-ner.SpanScorer.v1, giving one logit per span and label.
    scorer (Optional[Callable]): The scoring method, spaCy's NER scorer.
    RETURNS (BinaryNER): The component.
    """
    settings = PipeSettings.pick(locals())
    return BinaryNER(nlp.vocab, model, name, settings=settings, scorer=scorer)


def _check_static_vectors(pipe: "BinaryNER", nlp: Optional[Language]) -> None:
    """Raise a clear error where the model reads static vectors that the
    vocab does not have: spaCy's StaticVectors layer otherwise fails with
    an IndexError deep in the first forward pass."""
    if pipe.vocab.vectors.shape[0] > 0:
        return
    models = [pipe.model]
    if nlp is not None:
        models += [proc.model for _, proc in nlp.pipeline if isinstance(getattr(proc, "model", None), Model)]
    if any(layer.name == "static_vectors" for model in models for layer in model.walk()):
        raise ValueError(
            f"The '{pipe.name}' component's model reads static vectors "
            "(include_static_vectors = true), but the pipeline has no vectors. "
            "Set [initialize] vectors to a pipeline or a `spacy init vectors` folder "
            "(with configs/en_cnn_vectors.cfg: --paths.vectors VECTORS_DIR), or set "
            "include_static_vectors = false in the tok2vec's embed block."
        )


def find_binary_ner(nlp: Language, name: Optional[str] = None) -> Tuple[str, "BinaryNER"]:
    """The pipeline's `binary_ner` component.

    nlp (Language): The pipeline.
    name (Optional[str]): The component's name; None for the first `binary_ner`
        component of the pipeline.
    RETURNS (Tuple[str, BinaryNER]): Its name and the component.
    """
    if name is None:
        name = next((key for key, proc in nlp.pipeline if isinstance(proc, BinaryNER)), None)
        if name is None:
            has = f"it has {', '.join(nlp.pipe_names)} and" if nlp.pipe_names else "it has no components, so"
            raise ValueError(
                f"No binary_ner component in the pipeline: {has} no binary_ner component. "
                f"Add one with nlp.add_pipe('binary_ner'), or name the component to use."
            )
    if name not in nlp.pipe_names:
        raise ValueError(f"No component {name!r} in the pipeline (it has {', '.join(nlp.pipe_names) or 'none'}).")
    pipe = nlp.get_pipe(name)
    if not isinstance(pipe, BinaryNER):
        raise ValueError(f"Component {name!r} is a {type(pipe).__name__}, not a binary_ner pipe.")
    return name, pipe


class BinaryNER(TrainablePipe):
    """Named entities from binary (accept/reject/ignore) answers and complete
    annotations, one independent probability per span and label."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], Floats2d],
        name: str = "binary_ner",
        *,
        settings: Optional[PipeSettings] = None,
        scorer: Optional[Callable] = None,
        **overrides: Any,
    ) -> None:
        """Initialize the component.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], Floats2d]): The span scorer.
        name (str): The component's name.
        settings (Optional[PipeSettings]): The settings; None: the defaults.
        scorer (Optional[Callable]): The scoring method.
        **overrides: Settings given one by one, e.g. `threshold=0.3`; they
            replace those of `settings`.
        """
        settings = dataclasses.replace(settings or PipeSettings(), **overrides)
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {"labels": [], **settings.to_dict()}
        self.cfg[CONFIG_SETTINGS] = settings.to_dict()
        # Times `update` has seen each text (for `unknown_decay`); not saved.
        self._visits: Counter = Counter()

    @property
    def labels(self) -> Tuple[str, ...]:
        """The entity labels, in the order of the model's output columns."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def max_span_length(self) -> int:
        """Longest span the model scores, in tokens."""
        return int(self.model.attrs["max_span_length"])

    def add_label(self, label: str) -> int:
        """Add a label, before or after initialization. After it, the model's
        output layer grows by one column through the architecture's
        `model.attrs["resize_output"]` hook (called as `hook(model, n_labels,
        new_bias=...)`); the other labels keep their weights and scores, and
        the new one starts at a small prior probability.

        label (str): The label to add.
        RETURNS (int): 1 if added, else 0.
        """
        if not isinstance(label, str):
            raise ValueError(Errors.E187)
        problem = v2_label_error(label)
        if problem:
            raise ValueError(f"[{self.name}] Cannot add the {problem}.")
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        if self.is_resizable:
            self.model.attrs["resize_output"](self.model, len(self.labels), new_bias=_prior_logit())
        self.vocab.strings.add(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Initialize the model and the labels.

        get_examples (Callable[[], Iterable[Example]]): Training examples; labels
            are taken from their entities and rejected spans unless given.
        nlp (Language): The pipeline.
        labels (Optional[List[str]]): Labels to use, e.g. from `spacy init labels`.
        """
        validate_get_examples(get_examples, "BinaryNER.initialize")
        if labels is not None:
            for label in labels:
                self.add_label(label)
        else:
            found = set()
            key = self.cfg["incorrect_spans_key"]
            for eg in get_examples():
                found.update(ent.label_ for ent in eg.reference.ents)
                if key in eg.reference.spans:
                    found.update(span.label_ for span in eg.reference.spans[key])
            for label in sorted(found):
                self.add_label(label)
        if not self.labels:
            raise ValueError(
                f"The '{self.name}' component has no labels: the examples hold no "
                f"accepted or rejected spans and no labels were given. Pass labels "
                f"in [initialize.components.{self.name}] or train on answered data."
            )
        _check_static_vectors(self, nlp)
        self.model.get_ref("output_layer").set_dim("nO", len(self.labels))
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample or None)
        # Start every label at a small prior probability: almost no span is an
        # entity, and an untrained model near 0.5 everywhere floods the decoder.
        output_layer = self.model.get_ref("output_layer")
        output_layer.set_param("b", output_layer.ops.alloc1f(len(self.labels)) + _prior_logit())
        self._visits.clear()

    def from_disk(self, path: Any, *, exclude: Iterable[str] = ()) -> "BinaryNER":
        """Load the pipe from a directory. Settings given to the factory that
        differ from those the pipe was saved with (e.g. `spacy.load(path,
        config={"components": {"binary_ner": {"threshold": 0.3}}})`) apply.

        path (Union[str, Path]): The directory.
        exclude (Iterable[str]): Serialization fields to skip.
        RETURNS (BinaryNER): The pipe.
        """
        with self._given_settings_apply(), self._explain_mismatch(f"the folder {path}"):
            super().from_disk(path, exclude=exclude)
        return self

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "BinaryNER":
        """Load the pipe from bytes; settings given to the factory apply as in
        `from_disk`.

        bytes_data (bytes): The data.
        exclude (Iterable[str]): Serialization fields to skip.
        RETURNS (BinaryNER): The pipe.
        """
        with self._given_settings_apply(), self._explain_mismatch("the bytes given"):
            super().from_bytes(bytes_data, exclude=exclude)
        return self

    @contextlib.contextmanager
    def _explain_mismatch(self, source: str) -> Iterator[None]:
        """Thinc says only "mismatched structure" (and a wrapped torch module
        lists missing and unexpected state_dict keys) where saved weights do
        not fit the model the config builds; name the likely causes and the fix."""
        try:
            yield
        except (ValueError, RuntimeError) as error:
            if "mismatched structure" not in str(error) and "state_dict" not in str(error):
                raise
            raise ValueError(
                f"[{self.name}] The weights in {source} do not fit the model this pipeline's config builds: "
                f"they were saved from a model of another structure. Either the pipeline was trained with "
                f"another version of spacy-binary-ner than the one installed ({__version__}), or its "
                f"config.cfg was changed after training. Train it again with this version, or install "
                f"the version that trained it."
            ) from error

    @contextlib.contextmanager
    def _given_settings_apply(self) -> Iterator[None]:
        """Around loading `cfg`: apply the factory's settings that differ from
        the config the pipe was saved with (so they were given at load). The
        saved `cfg` keeps the others, including values set on `cfg` after the
        pipe was built (a tuned threshold). A pipe saved without the record of
        its config gets a warning naming the settings instead."""
        given = {key: self.cfg[key] for key in PipeSettings.names()}
        self.cfg.pop(CONFIG_SETTINGS, None)
        yield
        saved_config = self.cfg.get(CONFIG_SETTINGS)
        if saved_config is None:
            ignored = {key: value for key, value in given.items() if key in self.cfg and self.cfg[key] != value}
            if ignored:
                names = ", ".join(f"{key}={value!r} (saved: {self.cfg[key]!r})" for key, value in ignored.items())
                warnings.warn(
                    f"[{self.name}] The saved pipe's settings are used, not these from the config: {names}. "
                    f"Set them after loading instead, e.g. nlp.get_pipe({self.name!r}).cfg[{next(iter(ignored))!r}] "
                    f"= ..., and save the pipeline again.",
                    UserWarning,
                )
        else:
            for key, value in given.items():
                if key in saved_config and saved_config[key] != value:
                    self.cfg[key] = value
        self.cfg[CONFIG_SETTINGS] = dict(given)

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """Score every span and label. RETURNS (Floats2d): Logits, one row per
        span (see `spacy_binary_ner.spans`), one column per label."""
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        """Write entities and span probabilities to the docs."""
        threshold = self.cfg["threshold"]
        groups = {
            key: min_p
            for key, min_p in (
                (self.cfg["scores_key"], self.cfg["candidates_threshold"]),
                (self.cfg["nested_spans_key"], threshold),
            )
            if key
        }
        logits = self.model.ops.to_numpy(scores)
        annotate(docs, logits, self.max_span_length, self.labels, threshold, groups, self.cfg["overwrite_ents"])

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
        self_training: bool = True,
        unknown_decay: bool = True,
    ) -> Dict[str, float]:
        """Learn from a batch of examples.

        examples (Iterable[Example]): The batch.
        drop (float): The dropout rate.
        sgd (Optional[Optimizer]): The optimizer, to step after the update.
        losses (Optional[Dict[str, float]]): The losses so far, updated in place.
        self_training (bool): Whether the `pseudo_above` setting applies (the
            annotation loop turns it off).
        unknown_decay (bool): Whether the `unknown_decay` setting applies (the
            annotation loop turns it off); if not, the prior is constant.
        RETURNS (Dict[str, float]): The losses.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "BinaryNER.update")
        examples = list(examples)
        if not any(len(eg.predicted) if eg.predicted else 0 for eg in examples):
            # Handle cases where there are no tokens in any docs.
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop_scores = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(
            examples,
            scores,
            self_training=self_training,
            unknown_weights=self._visited(examples) if unknown_decay else None,
        )
        backprop_scores(d_scores)  # type: ignore
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def _visited(self, examples: List[Example]) -> Optional[List[float]]:
        """Count a visit of each example's text; with `unknown_decay`, return
        each example's prior weight for this visit (None: the constant one)."""
        decay = self.cfg.get("unknown_decay", 0.0)
        if not decay:
            return None
        weights = []
        for eg in examples:
            key = eg.reference.text
            self._visits[key] += 1
            weights.append(self.cfg["unknown_weight"] / self._visits[key] ** decay)
        return weights

    def get_loss(
        self,
        examples: Iterable[Example],
        scores: Floats2d,
        self_training: bool = True,
        unknown_weights: Optional[Sequence[float]] = None,
    ) -> Tuple[float, Floats2d]:
        """Weighted binary cross-entropy of the scores against the answers.

        examples (Iterable[Example]): The batch.
        scores (Floats2d): The model's logits for the batch.
        self_training (bool): Whether the `pseudo_above` setting applies.
        unknown_weights (Optional[Sequence[float]]): The prior's weight for each
            example; None: `unknown_weight` for all.
        RETURNS (Tuple[float, Floats2d]): The loss and its gradient for the scores.
        """
        examples = list(examples)
        ops = self.model.ops
        probs = ops.to_numpy(ops.sigmoid(scores))
        truths, weights = build_targets(
            examples,
            self.labels,
            self.max_span_length,
            self.cfg["unknown_weight"] if unknown_weights is None else unknown_weights,
            self.cfg["incorrect_spans_key"],
            probs=probs,
            unknown_mask_above=self.cfg["unknown_mask_above"],
            pseudo_above=self.cfg["pseudo_above"] if self_training else None,
            pseudo_weight=self.cfg["pseudo_weight"],
            weak_spans_key=self.cfg.get("weak_spans_key"),
            weak_weight=self.cfg.get("weak_weight", 0.0),
            weak_until=self.cfg.get("weak_until"),
        )
        # The derivative of binary cross-entropy with respect to the logit is
        # p - t: positive pushes the logit down, towards "not this label".
        d_scores = (probs - truths) * weights / len(examples)
        eps = 1e-7
        bce = -(truths * numpy.log(probs + eps) + (1 - truths) * numpy.log(1 - probs + eps))
        loss = float((bce * weights).sum() / len(examples))
        return loss, ops.asarray2f(d_scores.astype("float32"))


def _prior_logit() -> float:
    """The logit a label's bias starts at: `INITIAL_PRIOR`'s."""
    return float(numpy.log(INITIAL_PRIOR / (1 - INITIAL_PRIOR)))
