"""The `binary_textcat` pipe: text categories learned from accept/reject
answers (one text, one label) and complete annotations (`cats`).

This module knows Thinc models only; the architectures are in
`spacy_binary_ner.textcat.model`, the loss in `spacy_binary_ner.textcat.targets`
and the settings in `spacy_binary_ner.textcat.settings`.
"""

import copy
from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from spacy.errors import Errors
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.scorer import Scorer
from spacy.tokens import Doc
from spacy.training import Example, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model
from thinc.types import Floats2d

from ..pipeline import DEFAULT_MODEL
from .settings import TextcatSettings
from .targets import answered_labels, build_textcat_targets, textcat_loss, textcat_probabilities

# The tok2vec is binary_ner's default one.
DEFAULT_TEXTCAT_MODEL_CONFIG = """
[model]
@architectures = "spacy-binary-ner.TextcatScorer.v1"
hidden_width = 0
dropout = 0.0
"""
DEFAULT_TEXTCAT_MODEL = Config().from_str(DEFAULT_TEXTCAT_MODEL_CONFIG)["model"]
DEFAULT_TEXTCAT_MODEL["tok2vec"] = copy.deepcopy(DEFAULT_MODEL["tok2vec"])
SCORER = "spacy-binary-ner.textcat_scorer.v1"


@registry.scorers(SCORER)
def make_textcat_scorer() -> Callable[..., Dict[str, Any]]:
    """spaCy's `Scorer.score_cats` on `doc.cats`, multi-label or exclusive as
    the pipe's `exclusive` setting (passed from its `cfg`) says.

    RETURNS (Callable[..., Dict[str, Any]]): The scoring function.
    """
    return score_textcat


def score_textcat(examples: Iterable[Example], **cfg: Any) -> Dict[str, Any]:
    """Score `doc.cats` of the predicted docs against the references.

    examples (Iterable[Example]): The examples.
    **cfg: The pipe's `cfg`: `labels`, `exclusive` and `threshold` are read.
    RETURNS (Dict[str, Any]): spaCy's `cats_*` scores.
    """
    return Scorer.score_cats(
        examples,
        "cats",
        labels=cfg.get("labels", []),
        multi_label=not cfg.get("exclusive", False),
        threshold=cfg.get("threshold", 0.5),
    )


@Language.factory(
    "binary_textcat",
    assigns=["doc.cats"],
    default_config={"model": DEFAULT_TEXTCAT_MODEL, **TextcatSettings().to_dict(), "scorer": {"@scorers": SCORER}},
    default_score_weights={"cats_score": 1.0, "cats_score_desc": None, "cats_macro_f": None, "cats_micro_f": None},
)
def make_binary_textcat(
    nlp: Language,
    name: str,
    model: Model[List[Doc], Floats2d],
    exclusive: bool,
    threshold: float,
    unknown_weight: float,
    scorer: Optional[Callable],
) -> "BinaryTextcat":
    """Create a `binary_textcat` component. Its arguments but the model and
    the scorer are the pipe's settings, described in `TextcatSettings`.

    model (Model[List[Doc], Floats2d]): One logit per text and label, e.g.
        spacy-binary-ner.TextcatScorer.v1.
    scorer (Optional[Callable]): The scoring method.
    RETURNS (BinaryTextcat): The component.
    """
    settings = TextcatSettings.pick(locals())
    return BinaryTextcat(nlp.vocab, model, name, settings=settings, scorer=scorer)


class BinaryTextcat(TrainablePipe):
    """Text categories from binary (accept/reject/ignore) answers and
    complete annotations: one softmax over exclusive labels, or one sigmoid
    per label."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[List[Doc], Floats2d],
        name: str = "binary_textcat",
        *,
        settings: TextcatSettings = TextcatSettings(),
        scorer: Optional[Callable] = None,
    ) -> None:
        """Initialize the component; its `cfg` (saved with it) holds the labels and the settings.

        vocab (Vocab): The shared vocabulary.
        model (Model[List[Doc], Floats2d]): One logit per text and label.
        name (str): The component's name.
        settings (TextcatSettings): The settings, e.g. `TextcatSettings(exclusive=True)`.
        scorer (Optional[Callable]): The scoring method.
        """
        self.vocab, self.model, self.name, self.scorer = vocab, model, name, scorer
        self.cfg: Dict[str, Any] = {"labels": [], **settings.to_dict()}

    @property
    def exclusive(self) -> bool:
        """Whether the labels are mutually exclusive."""
        return bool(self.cfg["exclusive"])

    @property
    def labels(self) -> Tuple[str, ...]:
        """The labels, in the order of the model's output columns."""
        return tuple(self.cfg["labels"])

    # What `spacy init labels` saves.
    label_data = property(lambda self: list(self.labels))

    def add_label(self, label: str) -> int:
        """Add a label, before initialization.

        label (str): The label to add.
        RETURNS (int): 1 if added, else 0.
        """
        if not isinstance(label, str):
            raise ValueError(Errors.E187)
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Set the labels, then size and initialize the model.

        get_examples (Callable[[], Iterable[Example]]): Training examples; without
            `labels`, every label they answer or annotate is learned.
        nlp (Language): The pipeline (unused).
        labels (Optional[List[str]]): The labels, e.g. from `spacy init labels`.
        """
        validate_get_examples(get_examples, "BinaryTextcat.initialize")
        for label in answered_labels(get_examples()) if labels is None else labels:
            self.add_label(label)
        if len(self.labels) < (2 if self.exclusive else 1):
            raise ValueError(
                f"The '{self.name}' component has {len(self.labels)} label(s): "
                f"{'exclusive labels need at least two' if self.exclusive else 'it needs at least one'}. "
                f"Pass labels in [initialize.components.{self.name}] or train on answered data."
            )
        output_layer = self.model.get_ref("output_layer")
        output_layer.set_dim("nO", len(self.labels))
        doc_sample = [eg.reference for eg in islice(get_examples(), 10)]
        self.model.initialize(X=doc_sample or None)
        # Zero output weights, as spaCy's textcat has (Thinc's Softmax): every
        # label starts at the same score and the first steps do not send the
        # random projection's noise back into the tok2vec. On tnews_zh's dev
        # split this learned as fast as spaCy's textcat; random weights did not.
        output_layer.set_param("W", output_layer.ops.alloc2f(*output_layer.get_param("W").shape))

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """Score every text and label. RETURNS (Floats2d): Logits, one row per
        text, one column per label."""
        docs = list(docs)
        if not docs:
            return self.model.ops.alloc2f(0, len(self.labels))
        return self.model.predict(docs)

    def set_annotations(self, docs: Iterable[Doc], scores: Floats2d) -> None:
        """Write each text's label probabilities to `doc.cats`."""
        probs = textcat_probabilities(self.model.ops.to_numpy(scores), self.exclusive)
        for doc, row in zip(docs, probs):
            doc.cats.update({label: float(p) for label, p in zip(self.labels, row)})

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> Tuple[float, Floats2d]:
        """The weighted loss of the scores against the answers (see
        `spacy_binary_ner.textcat.targets`).

        examples (Iterable[Example]): The batch.
        scores (Floats2d): The model's logits for the batch.
        RETURNS (Tuple[float, Floats2d]): The loss and its gradient for the scores.
        """
        ops = self.model.ops
        truths, weights = build_textcat_targets(examples, self.labels, self.exclusive, self.cfg["unknown_weight"])
        loss, d_scores = textcat_loss(ops.to_numpy(scores), truths, weights, self.exclusive)
        return loss, ops.asarray2f(d_scores)
