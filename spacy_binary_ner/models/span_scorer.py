"""Thinc architecture: tok2vec -> PyTorch span encoder -> per-label logits."""

from typing import Callable, List, NamedTuple, Optional, Tuple, Union, cast

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Linear,
    Model,
    PyTorchWrapper_v2,
    chain,
    torch2xp,
    xp2torch,
)
from thinc.shims import PyTorchShim
from thinc.types import Floats1d, Floats2d

from .averaging import with_averaging
from .grouping import is_listener, with_groups, with_windows
from .output import resize_hook
from .pytorch.span_encoder import SpanEncoder

# Thinc loads a pipeline's torch weights with a plain `torch.load`; from torch
# 2.6 that refuses pickled objects other than tensors (weights_only=True).
SAFE_TORCH = (2, 6)


def torch_version(version: str) -> Tuple[int, int]:
    """The (major, minor) of a torch version string, e.g. "2.13.0+cpu"."""
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


if torch_version(torch.__version__) < SAFE_TORCH:
    raise ImportError(
        f"spacy-binary-ner needs torch >= {SAFE_TORCH[0]}.{SAFE_TORCH[1]}, not {torch.__version__}: an older torch "
        "loads a pipeline's weights with pickle, so a pipeline folder from someone else could run code on "
        "spacy.load. Upgrade torch (pip install 'torch>=2.6')."
    )

# Tokens scored per call of the span encoder at inference; its buffers grow
# with it (one width's span vectors, and the scores of every span).
PREDICT_TOKENS_PER_CALL = 16384
# A long doc is scored in windows of this many tokens, each with at least
# PREDICT_MARGIN tokens of context on either side (see `with_windows`).
PREDICT_WINDOW = 2048
PREDICT_MARGIN = 64


@registry.architectures("spacy-binary-ner.SpanScorer.v1")
def build_span_scorer(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 128,
    max_span_length: int = 10,
    lstm_width: int = 128,
    lstm_depth: int = 1,
    dropout: float = 0.1,
    tok2vec_width: Optional[int] = None,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Score every span of up to `max_span_length` tokens for every label.

    The token vectors from `tok2vec` (a `Tok2Vec`, a `Tok2VecListener` or a
    `TransformerListener`) go through a PyTorch `SpanEncoder`, wrapped with
    `PyTorchWrapper_v2`, and a Thinc `Linear` layer gives one logit per label.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token-vector subnetwork.
    hidden_width (int): Width of the span vectors.
    max_span_length (int): Longest span scored, in tokens.
    lstm_width (int): Width of the BiLSTM over the token vectors (both directions).
    lstm_depth (int): BiLSTM layers; 0 for none.
    dropout (float): Dropout rate inside the PyTorch module (spaCy's own dropout
        setting does not reach PyTorch layers).
    tok2vec_width (Optional[int]): Width of the token vectors, for a tok2vec that
        does not declare it (a `TransformerListener`: the transformer's hidden
        size, e.g. 768). None to read it from the tok2vec.
    nO (Optional[int]): Number of labels; inferred at initialization if None.
    RETURNS (Model[List[Doc], Floats2d]): Logits of shape (n_spans, n_labels):
        one row per span (i, i + w) with w < max_span_length that fits in its
        doc, ordered by doc, start token, then width.
    """
    n_in = tok2vec_width
    if n_in is None and tok2vec.has_dim("nO"):
        n_in = tok2vec.get_dim("nO")
    if n_in is None:
        raise ValueError(
            "The tok2vec passed to spacy-binary-ner.SpanScorer.v1 does not say how "
            "wide its vectors are. Set tok2vec_width in the architecture's config, "
            "e.g. tok2vec_width = 768 for a base-size transformer."
        )
    encoder = with_averaging(
        PyTorchWrapper_v2(
            SpanEncoder(
                n_in,
                hidden_width,
                max_span_length,
                lstm_width=lstm_width,
                lstm_depth=lstm_depth,
                dropout=dropout,
            ),
            convert_inputs=_convert_inputs,
            convert_outputs=_convert_outputs,
        )
    )
    output_layer = _output_layer(nO=nO, nI=hidden_width)
    head = span_head(encoder, output_layer, hidden_width, max_span_length)
    model = chain(tok2vec, with_groups(head, PREDICT_TOKENS_PER_CALL, len))
    if not is_listener(tok2vec):
        # A listener's vectors come from a component upstream, over the whole doc.
        margin = max(PREDICT_MARGIN, max_span_length)
        model = with_windows(model, PREDICT_WINDOW, margin, max_span_length, PREDICT_TOKENS_PER_CALL)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("span_encoder", head.layers[0])
    model.set_ref("output_layer", output_layer)
    model.attrs["max_span_length"] = max_span_length
    model.attrs["resize_output"] = resize_hook(_output_layer)
    return model


def span_head(
    encoder: Model[List[Floats2d], Floats2d],
    output_layer: Model[Floats2d, Floats2d],
    hidden_width: int,
    max_span_length: int,
) -> Model[List[Floats2d], Floats2d]:
    """Token vectors -> span vectors (`encoder`, a wrapped `SpanEncoder`) ->
    logits (`output_layer`). In training the two layers are chained; at
    inference the encoder applies the output layer's weights itself
    (`SpanEncoder.score`), so the (spans x hidden_width) span vectors are
    never stored: the same scores within float rounding.

    encoder (Model[List[Floats2d], Floats2d]): The wrapped span encoder.
    output_layer (Model[Floats2d, Floats2d]): The linear output layer.
    hidden_width (int): Width of the span vectors.
    max_span_length (int): Longest span, in tokens.
    RETURNS (Model[List[Floats2d], Floats2d]): Logits, one row per span.
    """
    spans = Model(
        "span_encoder",
        _skip_empty_forward,
        layers=[encoder],
        dims={"nO": hidden_width},
        attrs={"max_span_length": max_span_length},
    )
    chained = chain(spans, output_layer)
    return Model(
        chained.name,
        _span_head_forward,
        init=chained.init,
        dims={name: chained.maybe_get_dim(name) for name in chained.dim_names},
        layers=chained.layers,
    )


class ScoreWith(NamedTuple):
    """The encoder's input at inference: token vectors, and the output layer's
    weights to score the spans with."""

    tokvecs: List[Floats2d]
    weight: Floats2d
    bias: Floats1d


def _span_head_forward(
    model: Model[List[Floats2d], Floats2d], X: List[Floats2d], is_train: bool
) -> Tuple[Floats2d, Callable]:
    spans, output_layer = model.layers
    if is_train:
        H, backprop_spans = spans(X, is_train)
        Y, backprop_output = output_layer(H, is_train)
        return Y, lambda dY: backprop_spans(backprop_output(dY))
    if not any(len(x) for x in X):  # docs without tokens have no spans
        return model.ops.alloc2f(0, output_layer.get_dim("nO")), _no_backprop
    encoder = spans.layers[0]
    scores = encoder.predict(ScoreWith(X, output_layer.get_param("W"), output_layer.get_param("b")))
    return scores, _no_backprop


def _no_backprop(dY: Floats2d) -> List[Floats2d]:
    raise ValueError("binary_ner's span scorer was called for inference (is_train=False): it has no backprop")


def _output_layer(nO: Optional[int], nI: int) -> Model[Floats2d, Floats2d]:
    """Thinc's `Linear` (same name, dims, parameters and initialization), with
    the products done by the array library's `matmul`: there is one row per
    span, and on CPUs where numpy's BLAS is faster than Thinc's own gemm this
    layer was a tenth of inference time."""
    layer = Linear(nO=nO, nI=nI)
    return Model(
        layer.name,
        _output_forward,
        init=layer.init,
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
    )


def _output_forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    W = cast(Floats2d, model.get_param("W"))
    Y = xp.matmul(X, W.T)
    Y += model.get_param("b")

    def backprop(dY: Floats2d) -> Floats2d:
        model.inc_grad("b", dY.sum(axis=0))
        model.inc_grad("W", xp.matmul(dY.T, X))
        return cast(Floats2d, xp.matmul(dY, W))

    return cast(Floats2d, Y), backprop


def _skip_empty_forward(
    model: Model[List[Floats2d], Floats2d], X: List[Floats2d], is_train: bool
) -> Tuple[Floats2d, Callable]:
    """Call the PyTorch encoder, except on a batch without tokens, where
    PyTorch's packed sequences would fail."""
    if not any(len(x) for x in X):
        empty = model.ops.alloc2f(0, model.get_dim("nO"))
        return empty, lambda dY: [model.ops.alloc2f(0, x.shape[1]) for x in X]
    return model.layers[0](X, is_train)


def _convert_inputs(
    model: Model, X: Union[List[Floats2d], ScoreWith], is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], List[Floats2d]]]:
    shim = cast(PyTorchShim, model.shims[0])
    kwargs = {}
    if isinstance(X, ScoreWith):
        kwargs = {
            "output_weight": xp2torch(X.weight, device=shim.device),
            "output_bias": xp2torch(X.bias, device=shim.device),
        }
        X = X.tokvecs
    lengths = [len(x) for x in X]
    padded = model.ops.pad(X)  # (batch, max_len, width)
    Xt = xp2torch(padded, requires_grad=is_train, device=shim.device)
    lengths_t = torch.tensor(lengths, dtype=torch.int64)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> List[Floats2d]:
        d_padded = cast(Floats2d, torch2xp(d_inputs.args[0]))
        return [d_padded[i, :n] for i, n in enumerate(lengths)]

    return ArgsKwargs(args=(Xt, lengths_t), kwargs=kwargs), convert_from_torch_backward


def _convert_outputs(
    model: Model, inputs_outputs: Tuple[List[Floats2d], torch.Tensor], is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    _, Yt = inputs_outputs
    Y = cast(Floats2d, torch2xp(Yt.float()))

    def convert_for_torch_backward(dY: Floats2d) -> ArgsKwargs:
        dYt = xp2torch(dY, device=shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Y, convert_for_torch_backward
