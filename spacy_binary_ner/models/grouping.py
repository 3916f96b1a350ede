"""`with_groups`: run a layer on groups of a batch at inference, so its
buffers stay small.

A span layer's buffers grow with the batch (a row per span); scored a group of
docs at a time they stay bounded, which was also faster on CPU than one call
for spaCy's default batch. Training passes the batch through whole, as the
backward pass needs it.
"""
from typing import Callable, List, Sequence, Tuple, TypeVar

from thinc.api import Model
from thinc.types import Floats2d

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
    return Model(
        f"with_groups({layer.name})",
        _forward,
        init=_init,
        layers=[layer],
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
        attrs={"limit": limit, "size": size},
    )


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


def _no_backprop(dY: Floats2d) -> None:
    raise ValueError("with_groups was called for inference (is_train=False): it has no backprop")


def _init(model: Model, X=None, Y=None) -> Model:
    layer = model.layers[0]
    layer.initialize(X=X, Y=Y)
    for name in layer.dim_names:
        if layer.has_dim(name) and model.has_dim(name) is None:
            model.set_dim(name, layer.get_dim(name))
    return model
