"""Thinc architecture: a user's own PyTorch module behind the binary_ner loss.

The module's contract (what it receives, what it returns) is documented in
`spacy_binary_ner.models.contract`.
"""

from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple, Union, cast

import torch
from spacy.attrs import IDS
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Linear, Model, PyTorchWrapper_v2, chain, torch2xp, xp2torch
from thinc.shims import PyTorchShim
from thinc.types import Floats2d, Ints2d

from ..spans import n_span_cells
from .averaging import with_averaging
from .contract import OUTPUT_SPANS, OUTPUT_TOKENS, OUTPUTS, expected_shape
from .grouping import is_listener, with_groups, with_windows
from .output import resize_hook
from .span_scorer import PREDICT_MARGIN, PREDICT_TOKENS_PER_CALL, PREDICT_WINDOW, build_span_scorer

ARCHITECTURE = "spacy-binary-ner.TorchSpanScorer.v1"
TokenInputs = Union[List[Floats2d], List[Ints2d]]
# Most spans scored in one call of a module with `output = "spans"` at
# inference: the span vectors of a whole batch run to hundreds of MB.
PREDICT_SPANS_PER_CALL = 32768


@registry.architectures(ARCHITECTURE)
def build_torch_span_scorer(
    module: torch.nn.Module,
    width: int,
    max_span_length: int = 10,
    output: str = OUTPUT_TOKENS,
    tok2vec: Optional[Model[List[Doc], List[Floats2d]]] = None,
    id_attrs: Sequence[str] = ("NORM",),
    n_ids: int = 20000,
    hidden_width: int = 128,
    dropout: float = 0.1,
    mixed_precision: bool = False,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Score every span of up to `max_span_length` tokens for every label with a
    user's own `torch.nn.Module`, wrapped with `PyTorchWrapper_v2`.

    The module gets token ids (if `tok2vec` is None) or the token vectors of
    `tok2vec`, and returns token vectors (`output = "tokens"`), which this
    architecture's span encoder turns into span vectors, or span vectors
    (`output = "spans"`). A Thinc `Linear` layer, the `"output_layer"` whose
    label count the pipe sets, gives one logit per label. See
    `spacy_binary_ner.models.contract` for the exact tensors.

    module (torch.nn.Module): The user's module, from a registered function,
        e.g. `module = {"@misc": "my.BiLSTM.v1", "width": 128}`.
    width (int): Width of the vectors the module returns.
    max_span_length (int): Longest span scored, in tokens.
    output (str): "tokens" if the module returns one vector per token, "spans"
        if it returns one vector per candidate span.
    tok2vec (Optional[Model[List[Doc], List[Floats2d]]]): Token vectors fed to
        the module; None to feed it hashed token ids instead.
    id_attrs (Sequence[str]): Token attributes whose hashes are the ids, e.g.
        ["NORM", "SHAPE"]; used only without `tok2vec`.
    n_ids (int): Ids are hashes modulo `n_ids`; the size of the module's
        embedding table. Used only without `tok2vec`.
    hidden_width (int): Width of the span vectors built from token vectors;
        used only with `output = "tokens"`.
    dropout (float): Dropout in the span encoder; used only with
        `output = "tokens"` (the module's own dropout is the module's business:
        spaCy's dropout setting does not reach PyTorch).
    mixed_precision (bool): Run the module under CUDA autocast (GPU only).
    nO (Optional[int]): Number of labels; set by the pipe at initialization if None.
    RETURNS (Model[List[Doc], Floats2d]): Logits of shape (n_spans, n_labels):
        one row per span (i, i + w) with w < max_span_length that fits in its
        doc, ordered by doc, start token, then width.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            f"{ARCHITECTURE}: `module` must be a torch.nn.Module, but the function "
            f"registered for it returned a {type(module).__name__}. Make the "
            f"function return the module it builds."
        )
    if output not in OUTPUTS:
        raise ValueError(f"{ARCHITECTURE}: output must be one of {OUTPUTS}, got {output!r}")
    if width < 1 or max_span_length < 1:
        raise ValueError(
            f"{ARCHITECTURE}: width and max_span_length must be at least 1, got "
            f"width={width}, max_span_length={max_span_length}"
        )
    # Dense gradient buffers from the start: a sparse gradient (an
    # `nn.Embedding(..., sparse=True)`) then accumulates into them in place, as
    # Thinc's optimizer needs dense arrays, and no table-sized gradient is
    # allocated per step (on CPU, glibc's heap fragments on those: the process
    # grows by the table's size at every step).
    for param in module.parameters():
        if param.requires_grad and param.grad is None:
            param.grad = torch.zeros_like(param)
    if tok2vec is None:
        inputs = _doc_ids(id_attrs, n_ids)
    else:
        inputs = tok2vec
    module_layer = _module_layer(module, output, width, max_span_length, mixed_precision)
    if output == OUTPUT_TOKENS:
        # The module is the tok2vec of the stock span scorer, minus its BiLSTM.
        model = build_span_scorer(
            chain(inputs, module_layer),
            hidden_width=hidden_width,
            max_span_length=max_span_length,
            lstm_depth=0,
            dropout=dropout,
            tok2vec_width=width,
            nO=nO,
        )
    else:
        output_layer = Linear(nO=nO, nI=width)
        spans_of = partial(_n_spans, max_span_length=max_span_length)
        model = chain(inputs, with_groups(chain(module_layer, output_layer), PREDICT_SPANS_PER_CALL, spans_of))
        if not is_listener(inputs):
            margin = max(PREDICT_MARGIN, max_span_length)
            model = with_windows(model, PREDICT_WINDOW, margin, max_span_length, PREDICT_TOKENS_PER_CALL)
        model.set_ref("output_layer", output_layer)
        model.attrs["max_span_length"] = max_span_length
        model.attrs["resize_output"] = resize_hook()
    if tok2vec is not None:
        model.set_ref("tok2vec", tok2vec)
    model.set_ref("module", module_layer)
    return model


def _n_spans(x: Union[Floats2d, Ints2d], max_span_length: int) -> int:
    return n_span_cells(len(x), max_span_length)


def _doc_ids(id_attrs: Sequence[str], n_ids: int) -> Model[List[Doc], List[Ints2d]]:
    """Hashes of the tokens' attributes modulo `n_ids`, one row per token."""
    attrs = [attr.upper() for attr in id_attrs]
    unknown = [attr for attr in attrs if attr not in IDS]
    if not attrs or unknown:
        raise ValueError(
            f"{ARCHITECTURE}: id_attrs must name spaCy token attributes such as "
            f"NORM, LOWER, SHAPE, PREFIX, SUFFIX; got {list(id_attrs)}"
        )
    if n_ids < 1:
        raise ValueError(f"{ARCHITECTURE}: n_ids must be at least 1, got {n_ids}")
    return Model("doc_ids", _doc_ids_forward, attrs={"id_attrs": attrs, "n_ids": n_ids})


def _doc_ids_forward(
    model: Model[List[Doc], List[Ints2d]], docs: List[Doc], is_train: bool
) -> Tuple[List[Ints2d], Callable]:
    attrs, n_ids = model.attrs["id_attrs"], model.attrs["n_ids"]
    ids = [model.ops.asarray2i((doc.to_array(attrs) % n_ids).astype("int32")) for doc in docs]
    return ids, lambda d_ids: []


def _module_layer(
    module: torch.nn.Module, output: str, width: int, max_span_length: int, mixed_precision: bool
) -> Model[TokenInputs, Union[List[Floats2d], Floats2d]]:
    convert_outputs = _convert_token_outputs if output == OUTPUT_TOKENS else _convert_span_outputs
    wrapper = with_averaging(
        PyTorchWrapper_v2(
            module,
            convert_inputs=_convert_inputs,
            convert_outputs=convert_outputs,
            mixed_precision=mixed_precision,
        )
    )
    wrapper.attrs.update(output=output, width=width, max_span_length=max_span_length)
    return Model(
        "torch_module",
        _skip_empty_forward,
        layers=[wrapper],
        dims={"nO": width},
        attrs={"output": output},
    )


def _skip_empty_forward(
    model: Model, X: TokenInputs, is_train: bool
) -> Tuple[Union[List[Floats2d], Floats2d], Callable]:
    """Call the module on the docs that have tokens only: the contract promises
    it lengths of at least 1 (packed sequences fail on empty ones)."""
    ops = model.ops
    width = model.get_dim("nO")
    keep = [i for i, x in enumerate(X) if len(x)]

    def zeros_like_inputs() -> TokenInputs:
        return [ops.xp.zeros(x.shape, dtype=x.dtype) for x in X]

    if model.attrs["output"] == OUTPUT_SPANS:
        if not keep:
            return ops.alloc2f(0, width), lambda dY: zeros_like_inputs()
        # Empty docs have no spans: the rows of the kept docs are all the rows.
        Y, backprop = model.layers[0]([X[i] for i in keep], is_train)

        def backprop_spans(dY: Floats2d) -> TokenInputs:
            dX = zeros_like_inputs()
            for i, dx in zip(keep, backprop(dY)):
                dX[i] = dx
            return dX

        return Y, backprop_spans

    Ys = [ops.alloc2f(0, width) for _ in X]
    if not keep:
        return Ys, lambda dY: zeros_like_inputs()
    Y_kept, backprop = model.layers[0]([X[i] for i in keep], is_train)
    for i, y in zip(keep, Y_kept):
        Ys[i] = y

    def backprop_tokens(dY: List[Floats2d]) -> TokenInputs:
        dX = zeros_like_inputs()
        for i, dx in zip(keep, backprop([dY[i] for i in keep])):
            dX[i] = dx
        return dX

    return Ys, backprop_tokens


def _convert_inputs(
    model: Model, X: TokenInputs, is_train: bool
) -> Tuple[ArgsKwargs, Callable[[ArgsKwargs], TokenInputs]]:
    shim = cast(PyTorchShim, model.shims[0])
    lengths = [len(x) for x in X]
    padded = model.ops.pad(X)  # (batch, max_len, n_attrs or n_in)
    if padded.dtype.kind in "iu":
        Xt = xp2torch(padded, device=shim.device).long()
    else:
        Xt = xp2torch(padded, requires_grad=is_train, device=shim.device)
    lengths_t = torch.tensor(lengths, dtype=torch.int64)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> TokenInputs:
        d_padded = d_inputs.args[0]
        if d_padded is None:  # ids, or vectors that did not require grad
            return [model.ops.xp.zeros(x.shape, dtype=x.dtype) for x in X]
        dX = cast(Floats2d, torch2xp(d_padded))
        return [dX[i, :n] for i, n in enumerate(lengths)]

    return ArgsKwargs(args=(Xt, lengths_t), kwargs={}), convert_from_torch_backward


def _convert_token_outputs(
    model: Model, inputs_outputs: Tuple[TokenInputs, torch.Tensor], is_train: bool
) -> Tuple[List[Floats2d], Callable[[List[Floats2d]], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    X, Yt = inputs_outputs
    lengths = [len(x) for x in X]
    Yt = _check_output(model, Yt, lengths)
    Y = cast(Floats2d, torch2xp(Yt))
    Ys = [Y[i, :n] for i, n in enumerate(lengths)]

    def convert_for_torch_backward(dYs: List[Floats2d]) -> ArgsKwargs:
        dY = model.ops.alloc3f(*Yt.shape)
        for i, dy in enumerate(dYs):
            dY[i, : len(dy)] = dy
        dYt = xp2torch(dY, device=shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Ys, convert_for_torch_backward


def _convert_span_outputs(
    model: Model, inputs_outputs: Tuple[TokenInputs, torch.Tensor], is_train: bool
) -> Tuple[Floats2d, Callable[[Floats2d], ArgsKwargs]]:
    shim = cast(PyTorchShim, model.shims[0])
    X, Yt = inputs_outputs
    Yt = _check_output(model, Yt, [len(x) for x in X])
    Y = cast(Floats2d, torch2xp(Yt))

    def convert_for_torch_backward(dY: Floats2d) -> ArgsKwargs:
        dYt = xp2torch(dY, device=shim.device)
        return ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt})

    return Y, convert_for_torch_backward


def _check_output(model: Model, Yt: torch.Tensor, lengths: List[int]) -> torch.Tensor:
    """Raise an error that names the contract if the module's output does not
    fit it; return the output as float32 (it is half under mixed precision)."""
    output = model.attrs["output"]
    lengths_t = torch.tensor(lengths, dtype=torch.int64)
    shape = expected_shape(output, lengths_t, max(lengths), model.attrs["width"], model.attrs["max_span_length"])
    got = tuple(Yt.shape) if isinstance(Yt, torch.Tensor) else type(Yt).__name__
    if got != shape or not Yt.is_floating_point():
        what = (
            "(batch, max_len, width): one vector per token"
            if output == OUTPUT_TOKENS
            else "(n_spans, width): one vector per candidate span, ordered by doc, "
            "start, then width (see spans.span_index)"
        )
        raise ValueError(
            f"{ARCHITECTURE}: with output = {output!r} the module must return one float "
            f"tensor of shape {what}, here {shape}; it returned {got}"
            + (f" of dtype {Yt.dtype}" if isinstance(Yt, torch.Tensor) else "")
            + ". Fix the module, or the architecture's `width` / `output` / "
            "`max_span_length`. The contract: spacy_binary_ner.models.contract."
        )
    return Yt.float()
