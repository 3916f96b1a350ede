"""Thinc architecture: tok2vec -> PyTorch span encoder -> per-label logits."""
from typing import Callable, List, Optional, Tuple, cast

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
from thinc.layers.chain import forward as chain_forward
from thinc.shims import PyTorchShim
from thinc.types import Floats2d

from .output import resize_hook
from .pytorch.span_encoder import SpanEncoder

# Tokens scored per call of the span encoder at inference; its buffers grow
# with it (one width's span vectors, and the scores of every span).
PREDICT_TOKENS_PER_CALL = 16384


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
    encoder = PyTorchWrapper_v2(
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
    output_layer = _output_layer(nO=nO, nI=hidden_width)
    spans = Model(
        "span_encoder",
        _skip_empty_forward,
        layers=[encoder],
        dims={"nO": hidden_width},
        attrs={"max_span_length": max_span_length},
    )
    chained = chain(tok2vec, spans, output_layer)
    # The chain's name, layers and init; at inference the span encoder applies
    # the output layer itself (`_span_scorer_forward`).
    model = Model(
        chained.name,
        _span_scorer_forward,
        init=chained.init,
        dims={name: chained.maybe_get_dim(name) for name in chained.dim_names},
        layers=chained.layers,
        attrs={"predicts_in_groups": True},
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("output_layer", output_layer)
    model.attrs["max_span_length"] = max_span_length
    model.attrs["resize_output"] = resize_hook(_output_layer)
    return model


def _span_scorer_forward(model: Model[List[Doc], Floats2d], docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    """Training: the chain tok2vec >> span encoder >> output layer. Inference:
    the tok2vec on all docs, then the span encoder with the output layer's
    weights, on groups of at most `PREDICT_TOKENS_PER_CALL` tokens, so the
    (spans x hidden_width) span vectors are never stored; same scores within
    float rounding."""
    if is_train:
        return chain_forward(model, docs, is_train)
    tok2vec, spans, output_layer = model.layers
    tokvecs = tok2vec.predict(docs)
    n_labels = output_layer.get_dim("nO")
    encoder = spans.layers[0]
    shim = cast(PyTorchShim, encoder.shims[0])
    weight = xp2torch(output_layer.get_param("W"), device=shim.device)
    bias = xp2torch(output_layer.get_param("b"), device=shim.device)
    scores = []
    begin = 0
    while begin < len(tokvecs):
        end, n_tokens = begin, 0
        while end < len(tokvecs) and (end == begin or n_tokens + len(tokvecs[end]) <= PREDICT_TOKENS_PER_CALL):
            n_tokens += len(tokvecs[end])
            end += 1
        group = tokvecs[begin:end]
        begin = end
        if not n_tokens:  # docs without tokens have no spans
            continue
        padded = model.ops.pad(group)
        inputs = ArgsKwargs(
            args=(xp2torch(padded, device=shim.device), torch.tensor([len(x) for x in group], dtype=torch.int64)),
            kwargs={"output_weight": weight, "output_bias": bias},
        )
        Yt, _ = shim(inputs, is_train=False)
        scores.append(cast(Floats2d, torch2xp(Yt.float())))
    if not scores:
        return model.ops.alloc2f(0, n_labels), _no_backprop
    return model.ops.xp.concatenate(scores) if len(scores) > 1 else scores[0], _no_backprop


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
    model: Model, X: List[Floats2d], is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], List[Floats2d]]]:
    shim = cast(PyTorchShim, model.shims[0])
    lengths = [len(x) for x in X]
    padded = model.ops.pad(X)  # (batch, max_len, width)
    Xt = xp2torch(padded, requires_grad=is_train, device=shim.device)
    lengths_t = torch.tensor(lengths, dtype=torch.int64)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> List[Floats2d]:
        d_padded = cast(Floats2d, torch2xp(d_inputs.args[0]))
        return [d_padded[i, :n] for i, n in enumerate(lengths)]

    return ArgsKwargs(args=(Xt, lengths_t), kwargs={}), convert_from_torch_backward


def _convert_outputs(
    model: Model, inputs_outputs: Tuple[List[Floats2d], torch.Tensor], is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    _, Yt = inputs_outputs
    Y = cast(Floats2d, torch2xp(Yt))

    def convert_for_torch_backward(dY: Floats2d) -> ArgsKwargs:
        dYt = xp2torch(dY, device=shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Y, convert_for_torch_backward
