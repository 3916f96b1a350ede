"""Thinc architectures of `binary_rel`: token vectors of a tok2vec, a PyTorch
module that turns them and the candidate pairs into one vector per pair, and
a Thinc `Linear` output layer, one logit per relation label.

The model's input is `(docs, pairs)`: the docs, and for each an `Ints2d` of
shape (n_pairs, 4), the token offsets `head_start, head_end, child_start,
child_end` (ends exclusive) of its candidate pairs, which the pipe chooses.
Its output has one row per pair, in order.

A user's own module goes behind the same loss with
`spacy-binary-ner.TorchRelScorer.v1`. Its contract: it is called as
`module(X, lengths, pairs)`, with `X` the token vectors, a float tensor of
shape `(batch, max_len, n_in)` on the model's device (zero past each text's
length, requiring grad in training), `lengths` a `torch.LongTensor` of shape
`(batch,)` on the CPU, and `pairs` a `torch.LongTensor` of shape `(n_pairs,
5)` on the CPU: the text's index in the batch, then the four token offsets.
Only texts with at least one pair are in the batch, and the module is not
called when there is no pair. It returns a float tensor of shape `(n_pairs,
width)`. The pipe owns the output layer, whose label count it sets at
initialization; spaCy's dropout setting does not reach PyTorch, so dropout is
the module's constructor argument. `spacy-binary-ner.RelScorer.v1` is the same
architecture with the built-in `PairEncoder`.
"""

from typing import Callable, List, Optional, Tuple, cast

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Linear, Model, PyTorchWrapper_v2, torch2xp, xp2torch
from thinc.shims import PyTorchShim
from thinc.types import Floats2d, Ints2d

from ..models.averaging import with_averaging
from .pytorch.pair_encoder import PairEncoder

ARCHITECTURE = "spacy-binary-ner.RelScorer.v1"
TORCH_ARCHITECTURE = "spacy-binary-ner.TorchRelScorer.v1"
RelInputs = Tuple[List[Doc], List[Ints2d]]
_PairInputs = Tuple[List[Floats2d], List[Ints2d]]


@registry.architectures(ARCHITECTURE)
def build_rel_scorer(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 128,
    embed_width: int = 16,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[RelInputs, Floats2d]:
    """One logit per candidate pair and relation label: each pair as its two
    entities (first and last token vectors and their mean), their widths and
    signed distance (embeddings) and the mean of the tokens between them,
    through a hidden ReLU layer (a PyTorch module), then a linear output layer.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors, e.g.
        spacy.Tok2Vec.v2 or a listener; its width must be set (`nO`).
    hidden_width (int): Width of the pair vectors.
    embed_width (int): Width of the width and distance embeddings.
    dropout (float): Dropout on the pair vectors in training.
    nO (Optional[int]): Number of labels; set by the pipe at initialization if None.
    RETURNS (Model[RelInputs, Floats2d]): Logits, one row per pair.
    """
    if not tok2vec.has_dim("nO") or tok2vec.get_dim("nO") is None:
        raise ValueError(f"{ARCHITECTURE}: the tok2vec's width (nO) must be known when the model is built.")
    module = PairEncoder(tok2vec.get_dim("nO"), hidden_width, embed_width, dropout)
    return build_torch_rel_scorer(module, hidden_width, tok2vec, nO=nO)


@registry.architectures(TORCH_ARCHITECTURE)
def build_torch_rel_scorer(
    module: torch.nn.Module,
    width: int,
    tok2vec: Model[List[Doc], List[Floats2d]],
    mixed_precision: bool = False,
    nO: Optional[int] = None,
) -> Model[RelInputs, Floats2d]:
    """One logit per candidate pair and relation label from a user's own
    `torch.nn.Module`, which turns token vectors and pairs into one vector per
    pair (the module docstring's contract), wrapped with `PyTorchWrapper_v2`;
    a Thinc `Linear` layer, the `"output_layer"`, gives the logits.

    module (torch.nn.Module): The module, from a registered function, e.g.
        `module = {"@misc": "my.PairEncoder.v1", "width": 128}`.
    width (int): Width of the vectors the module returns.
    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors fed to the module.
    mixed_precision (bool): Run the module under CUDA autocast (GPU only).
    nO (Optional[int]): Number of labels; set by the pipe at initialization if None.
    RETURNS (Model[RelInputs, Floats2d]): Logits, one row per pair.
    """
    problem = (
        f"`module` must be a torch.nn.Module, but the function registered for it returned a {type(module).__name__}"
        if not isinstance(module, torch.nn.Module)
        else f"width must be at least 1, got {width}"
        if width < 1
        else None
    )
    if problem is not None:
        raise (ValueError if isinstance(module, torch.nn.Module) else TypeError)(f"{TORCH_ARCHITECTURE}: {problem}.")
    wrapper = with_averaging(PyTorchWrapper_v2(module, convert_inputs=_convert_inputs, mixed_precision=mixed_precision))
    wrapper.attrs["width"] = width
    pair_vectors = Model("pair_vectors", _pair_vectors_forward, layers=[wrapper], dims={"nO": width})
    output_layer = Linear(nO=nO, nI=width)
    model = Model(
        "rel_scorer", _rel_forward, init=_rel_init, layers=[tok2vec, pair_vectors, output_layer], dims={"nO": nO}
    )
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("module", pair_vectors)
    model.set_ref("output_layer", output_layer)
    return model


def _rel_init(model: Model, X: Optional[RelInputs] = None, Y: Optional[Floats2d] = None) -> None:
    tok2vec, _, output_layer = model.layers
    tok2vec.initialize(X=X[0] if X is not None else None)
    if model.has_dim("nO") and model.get_dim("nO") is not None:
        output_layer.set_dim("nO", model.get_dim("nO"))
    output_layer.initialize()


def _rel_forward(model: Model, X: RelInputs, is_train: bool) -> Tuple[Floats2d, Callable]:
    docs, pairs = X
    tok2vec, pair_vectors, output_layer = model.layers
    tokvecs, backprop_tok2vec = tok2vec(docs, is_train)
    V, backprop_pairs = pair_vectors((tokvecs, pairs), is_train)
    Y, backprop_output = output_layer(V, is_train)

    def backprop(dY: Floats2d) -> RelInputs:
        backprop_tok2vec(backprop_pairs(backprop_output(dY)))
        return X

    return Y, backprop


def _pair_vectors_forward(model: Model, X: _PairInputs, is_train: bool) -> Tuple[Floats2d, Callable]:
    """Call the module on the texts that have pairs only; without any pair it
    is not called (the contract)."""
    ops = model.ops
    tokvecs, pairs = X
    keep = [i for i, p in enumerate(pairs) if len(p)]

    def zeros_like_inputs() -> List[Floats2d]:
        return [ops.xp.zeros(x.shape, dtype=x.dtype) for x in tokvecs]

    if not keep:
        return ops.alloc2f(0, model.get_dim("nO")), lambda dY: zeros_like_inputs()
    Y, backprop = model.layers[0](([tokvecs[i] for i in keep], [pairs[i] for i in keep]), is_train)
    expected = (sum(len(p) for p in pairs), model.get_dim("nO"))
    if not isinstance(Y, ops.xp.ndarray) or Y.shape != expected or Y.dtype.kind != "f":
        got = getattr(Y, "shape", type(Y).__name__)
        raise ValueError(
            f"{TORCH_ARCHITECTURE}: the module must return one float tensor of shape (n_pairs, width), "
            f"here {expected}; it returned {got}. Fix the module, or the architecture's `width`."
        )
    Y = ops.asarray2f(Y, dtype="float32")

    def backprop_pairs(dY: Floats2d) -> List[Floats2d]:
        dX = zeros_like_inputs()
        for i, dx in zip(keep, backprop(dY)):
            dX[i] = dx
        return dX

    return Y, backprop_pairs


def _convert_inputs(
    model: Model, X: _PairInputs, is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], List[Floats2d]]]:
    shim = cast(PyTorchShim, model.shims[0])
    tokvecs, pairs = X
    lengths = [len(x) for x in tokvecs]
    Xt = xp2torch(model.ops.pad(tokvecs), requires_grad=is_train, device=shim.device)
    rows = [
        numpy.hstack([numpy.full((len(p), 1), i, dtype="int64"), model.ops.to_numpy(p).astype("int64")])
        for i, p in enumerate(pairs)
    ]
    pairs_t = torch.from_numpy(numpy.concatenate(rows))
    lengths_t = torch.tensor(lengths, dtype=torch.int64)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> List[Floats2d]:
        d_padded = d_inputs.args[0]
        if d_padded is None:
            return [model.ops.xp.zeros(x.shape, dtype=x.dtype) for x in tokvecs]
        dX = cast(Floats2d, torch2xp(d_padded))
        return [dX[i, :n] for i, n in enumerate(lengths)]

    return ArgsKwargs(args=(Xt, lengths_t, pairs_t), kwargs={}), convert_from_torch_backward
