"""`with_groups`: run a layer on groups of a batch at inference, so its
buffers stay small; `with_windows`: score a long doc in windows, so memory
grows linearly with its length and no single call sees all of it.

A span layer's buffers grow with the batch (a row per span); scored a group of
docs at a time they stay bounded, which was also faster on CPU than one call
for spaCy's default batch. Training passes the batch through whole, as the
backward pass needs it.
"""

from typing import Any, Callable, Dict, List, Sequence, Tuple, TypeVar

from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from ..spans import n_span_cells

InT = TypeVar("InT")


def with_groups(
    layer: Model[List[InT], Floats2d], limit: int, size: Callable[[InT], int]
) -> Model[List[InT], Floats2d]:
    """Call `layer` on consecutive groups of the batch whose sizes add up to at
    most `limit` (a group holds at least one item) when not training, and
    concatenate the outputs, rows in order.

    layer (Model[List[InT], Floats2d]): A layer whose output has one block of
        rows per input item, in order (e.g. the spans of each doc).
    limit (int): Largest total size of a group.
    size (Callable[[InT], int]): The size of one item (e.g. its tokens or spans).
    RETURNS (Model[List[InT], Floats2d]): The layer, grouped at inference.
    """
    return _wrapper("with_groups", _forward, layer, {"limit": limit, "size": size})


def groups(items: Sequence[InT], limit: int, size: Callable[[InT], int]) -> List[Tuple[int, int]]:
    """Consecutive `[begin, end)` groups of `items` of total size at most
    `limit`, each holding at least one item."""
    out: List[Tuple[int, int]] = []
    begin = 0
    while begin < len(items):
        end, total = begin, 0
        while end < len(items) and (end == begin or total + size(items[end]) <= limit):
            total += size(items[end])
            end += 1
        out.append((begin, end))
        begin = end
    return out


def _forward(model: Model[List[InT], Floats2d], X: List[InT], is_train: bool) -> Tuple[Floats2d, Callable]:
    layer = model.layers[0]
    if is_train:
        return layer(X, is_train)
    parts = [layer.predict(X[begin:end]) for begin, end in groups(X, model.attrs["limit"], model.attrs["size"])]
    if len(parts) == 1:
        return parts[0], _no_backprop
    if not parts:
        return layer.predict(X), _no_backprop
    return model.ops.xp.concatenate(parts), _no_backprop


def is_listener(model: Model) -> bool:
    """Whether a tok2vec (or a layer in it) listens to a component upstream
    (a `Tok2VecListener`, a `TransformerListener`), which sees the whole doc."""
    return any(hasattr(layer, "upstream_name") or "listener" in layer.name for layer in model.walk())


def _no_backprop(dY: Floats2d) -> None:
    raise ValueError("with_groups was called for inference (is_train=False): it has no backprop")


def _init(model: Model, X=None, Y=None) -> Model:
    layer = model.layers[0]
    layer.initialize(X=X, Y=Y)
    for name in layer.dim_names:
        if layer.has_dim(name) and model.has_dim(name) is None:
            model.set_dim(name, layer.get_dim(name))
    return model


def with_windows(
    layer: Model[List[Doc], Floats2d], window: int, margin: int, max_span_length: int, limit: int
) -> Model[List[Doc], Floats2d]:
    """Score docs longer than `window + 2 * margin` tokens in windows at
    inference, and stitch the rows back into the doc's row order; training
    passes the batch through whole.

    Each window scores the spans that start in its `window` tokens, with
    `margin` tokens of context on either side (cut from the doc with
    `Span.as_doc`, so token attributes are kept); `margin` must be at least
    `max_span_length`, so every span of the doc is scored whole in exactly one
    window. Docs and windows are scored in groups of at most `limit` tokens.
    Spans near a window's edge see less context than in the whole doc, so
    their scores can differ slightly from one call on the whole doc; a model
    whose context is shorter than `margin` gives the same scores.

    layer (Model[List[Doc], Floats2d]): Docs -> one row per span (see
        `spans.cell_coordinates`), docs in order.
    window (int): Tokens whose spans one window scores.
    margin (int): Context tokens on each side of a window.
    max_span_length (int): Longest span, in tokens.
    limit (int): Most tokens per call of `layer`.
    RETURNS (Model[List[Doc], Floats2d]): The layer, windowed at inference.
    """
    if margin < max_span_length or window < 1:
        raise ValueError(f"with_windows needs window >= 1 and margin >= max_span_length, not {window}, {margin}")
    attrs = {"window": window, "margin": margin, "max_span_length": max_span_length, "limit": limit}
    return _wrapper("with_windows", _windows_forward, layer, attrs)


def _wrapper(name: str, forward: Callable, layer: Model, attrs: Dict[str, Any]) -> Model:
    """A model around `layer` with its dims, run by `forward`."""
    return Model(
        f"{name}({layer.name})",
        forward,
        init=_init,
        layers=[layer],
        dims={dim: layer.maybe_get_dim(dim) for dim in layer.dim_names},
        attrs=attrs,
    )


def windows(n_tokens: int, window: int, margin: int) -> List[Tuple[int, int, int, int]]:
    """The windows of a doc: `(a, b, c0, c1)`, the window's tokens `[a, b)` and
    the tokens `[c0, c1)` whose spans it scores. One window if the doc is no
    longer than `window + 2 * margin`."""
    if n_tokens <= window + 2 * margin:
        return [(0, n_tokens, 0, n_tokens)]
    out = []
    for c0 in range(0, n_tokens, window):
        c1 = min(n_tokens, c0 + window)
        out.append((max(0, c0 - margin), min(n_tokens, c1 + margin), c0, c1))
    return out


def _rows_before(n_tokens: int, start: int, L: int) -> int:
    """Rows of a doc's spans that start before token `start`."""
    return n_span_cells(n_tokens, L) - n_span_cells(n_tokens - start, L)


def _cut(doc: Doc, a: int, b: int, arrays: Dict[int, Tuple[List[int], Any]], key: int) -> Doc:
    """Tokens `[a, b)` of a doc as a doc of their own, token attributes kept."""
    if (a, b) == (0, len(doc)):
        return doc
    if key not in arrays:
        # `Span.as_doc` reads the whole doc's attributes unless given them: once per doc.
        head = doc._get_array_attrs()
        arrays[key] = (head, doc.to_array(head))
    head, array = arrays[key]
    return doc[a:b].as_doc(array_head=head, array=array)


def _windows_forward(model: Model[List[Doc], Floats2d], docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    layer = model.layers[0]
    window, margin, L = model.attrs["window"], model.attrs["margin"], model.attrs["max_span_length"]
    if is_train or all(len(doc) <= window + 2 * margin for doc in docs):
        return layer(docs, is_train)
    # Items to score: whole docs, or windows `[a, b)` of them, with where their
    # rows go: (rows of the item to keep, rows of the output to fill). Windows
    # are cut as their group is scored, so only one group's copies exist.
    items: List[Tuple[int, int, int]] = []  # doc index, a, b
    places: List[Tuple[int, int, int, int]] = []
    offset = 0
    for i, doc in enumerate(docs):
        n = len(doc)
        for a, b, c0, c1 in windows(n, window, margin):
            items.append((i, a, b))
            lo = _rows_before(b - a, c0 - a, L)
            hi = _rows_before(b - a, c1 - a, L)
            places.append((lo, hi, offset + _rows_before(n, c0, L), offset + _rows_before(n, c1, L)))
        offset += n_span_cells(n, L)
    output = None
    arrays: Dict[int, Tuple[List[int], Any]] = {}
    for begin, end in groups(items, model.attrs["limit"], lambda item: item[2] - item[1]):
        group = [_cut(docs[i], a, b, arrays, i) for i, a, b in items[begin:end]]
        # A doc's attributes are kept only while its windows are being cut.
        for i in [i for i in arrays if i < items[end - 1][0]]:
            del arrays[i]
        scores = layer.predict(group)
        if output is None:
            output = model.ops.alloc2f(offset, scores.shape[1])
        row = 0
        for item, (lo, hi, out_lo, out_hi) in zip(group, places[begin:end]):
            output[out_lo:out_hi] = scores[row + lo : row + hi]
            row += n_span_cells(len(item), L)
    return output, _no_backprop
