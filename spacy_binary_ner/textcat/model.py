"""Thinc architectures of `binary_textcat`: token vectors of a tok2vec, a
PyTorch module that turns them into one vector per text, and a Thinc `Linear`
output layer, one logit per label.

A user's own module goes behind the same loss with
`spacy-binary-ner.TorchTextcatScorer.v1`. Its contract: it is called as
`module(X, lengths)`, with `X` the token vectors, a float tensor of shape
`(batch, max_len, n_in)` on the model's device (zero past each text's length,
requiring grad in training), and `lengths` a `torch.LongTensor` of shape
`(batch,)` on the CPU, every length at least 1 (texts without tokens never
reach it and get a zero vector). It returns a float tensor of shape `(batch,
width)`. The pipe owns the output layer, whose label count it sets at
initialization; spaCy's dropout setting does not reach PyTorch, so dropout is
the module's constructor argument. `spacy-binary-ner.TextcatScorer.v1` is the
same architecture with the built-in `MeanMaxPooler`.
"""

from typing import Callable, List, Optional, Tuple, cast

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Linear, Model, PyTorchWrapper_v2, chain, torch2xp, xp2torch
from thinc.shims import PyTorchShim
from thinc.types import Floats2d

from ..models.averaging import with_averaging
from ..models.torch_span_scorer import _convert_inputs as convert_token_inputs
from .pytorch.pooling import MeanMaxPooler, output_width

ARCHITECTURE = "spacy-binary-ner.TextcatScorer.v1"
TORCH_ARCHITECTURE = "spacy-binary-ner.TorchTextcatScorer.v1"


@registry.architectures(ARCHITECTURE)
def build_textcat_scorer(
    tok2vec: Model[List[Doc], List[Floats2d]],
    hidden_width: int = 0,
    dropout: float = 0.0,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """One logit per text and label: the mean and the maximum of the
    tok2vec's token vectors, through a hidden ReLU layer if `hidden_width` is
    not 0 (a PyTorch module), then a linear output layer.

    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors, e.g.
        spacy.Tok2Vec.v2 or a listener; its width must be set (`nO`).
    hidden_width (int): Width of the hidden layer; 0: none, the pooled vectors
        go to the output layer.
    dropout (float): Dropout on the text vectors in training.
    nO (Optional[int]): Number of labels; set by the pipe at initialization if None.
    RETURNS (Model[List[Doc], Floats2d]): Logits, one row per text.
    """
    if not tok2vec.has_dim("nO") or tok2vec.get_dim("nO") is None:
        raise ValueError(f"{ARCHITECTURE}: the tok2vec's width (nO) must be known when the model is built.")
    n_in = tok2vec.get_dim("nO")
    module = MeanMaxPooler(n_in, hidden_width, dropout)
    return build_torch_textcat_scorer(module, output_width(n_in, hidden_width), tok2vec, nO=nO)


@registry.architectures(TORCH_ARCHITECTURE)
def build_torch_textcat_scorer(
    module: torch.nn.Module,
    width: int,
    tok2vec: Model[List[Doc], List[Floats2d]],
    mixed_precision: bool = False,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """One logit per text and label from a user's own `torch.nn.Module`, which
    turns token vectors into one vector per text (the module docstring's
    contract), wrapped with `PyTorchWrapper_v2`; a Thinc `Linear` layer, the
    `"output_layer"`, gives the logits.

    module (torch.nn.Module): The module, from a registered function, e.g.
        `module = {"@misc": "my.TextEncoder.v1", "width": 128}`.
    width (int): Width of the vectors the module returns.
    tok2vec (Model[List[Doc], List[Floats2d]]): Token vectors fed to the module.
    mixed_precision (bool): Run the module under CUDA autocast (GPU only).
    nO (Optional[int]): Number of labels; set by the pipe at initialization if None.
    RETURNS (Model[List[Doc], Floats2d]): Logits, one row per text.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            f"{TORCH_ARCHITECTURE}: `module` must be a torch.nn.Module, but the function registered "
            f"for it returned a {type(module).__name__}."
        )
    if width < 1:
        raise ValueError(f"{TORCH_ARCHITECTURE}: width must be at least 1, got {width}")
    wrapper = with_averaging(
        PyTorchWrapper_v2(
            module,
            convert_inputs=convert_token_inputs,
            convert_outputs=_convert_outputs,
            mixed_precision=mixed_precision,
        )
    )
    wrapper.attrs["width"] = width
    doc_vectors = Model("text_vectors", _text_vectors_forward, layers=[wrapper], dims={"nO": width})
    output_layer = Linear(nO=nO, nI=width)
    model = chain(tok2vec, doc_vectors, output_layer)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("module", doc_vectors)
    model.set_ref("output_layer", output_layer)
    return model


def _text_vectors_forward(model: Model, X: List[Floats2d], is_train: bool) -> Tuple[Floats2d, Callable]:
    """Call the module on the texts that have tokens only; the others get a
    zero vector (the contract promises lengths of at least 1)."""
    ops = model.ops
    keep = [i for i, x in enumerate(X) if len(x)]
    Y = ops.alloc2f(len(X), model.get_dim("nO"))

    def zeros_like_inputs() -> List[Floats2d]:
        return [ops.xp.zeros(x.shape, dtype=x.dtype) for x in X]

    if not keep:
        return Y, lambda dY: zeros_like_inputs()
    Y_kept, backprop = model.layers[0]([X[i] for i in keep], is_train)
    Y[keep] = Y_kept

    def backprop_texts(dY: Floats2d) -> List[Floats2d]:
        dX = zeros_like_inputs()
        for i, dx in zip(keep, backprop(ops.asarray2f(dY[keep]))):
            dX[i] = dx
        return dX

    return Y, backprop_texts


def _convert_outputs(
    model: Model, inputs_outputs: Tuple[List[Floats2d], torch.Tensor], is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    X, Yt = inputs_outputs
    shape = (len(X), model.attrs["width"])
    got = tuple(Yt.shape) if isinstance(Yt, torch.Tensor) else type(Yt).__name__
    if got != shape or not Yt.is_floating_point():
        raise ValueError(
            f"{TORCH_ARCHITECTURE}: the module must return one float tensor of shape (batch, width), "
            f"here {shape}; it returned {got}. Fix the module, or the architecture's `width`."
        )
    Yt = Yt.float()
    Y = cast(Floats2d, torch2xp(Yt))

    def convert_for_torch_backward(dY: Floats2d) -> ArgsKwargs:
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": xp2torch(dY, device=shim.device)})

    return Y, convert_for_torch_backward
