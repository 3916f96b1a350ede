"""Growing the output layer of a span scorer when the pipe gains a label.

The architectures put `resize_output` in `model.attrs["resize_output"]`, the
hook spaCy's `TrainablePipe.is_resizable` looks for; the pipe calls it and
never touches the layers itself.
"""

from functools import partial
from typing import Callable, Optional

from thinc.api import Linear, Model
from thinc.types import Floats2d

OutputLayerFactory = Callable[[Optional[int], int], Model[Floats2d, Floats2d]]


def linear_output_layer(nO: Optional[int], nI: int) -> Model[Floats2d, Floats2d]:
    """Thinc's `Linear`, as an output-layer factory for `resize_output`."""
    return Linear(nO=nO, nI=nI)


def resize_output(
    model: Model,
    new_nO: int,
    *,
    make_layer: OutputLayerFactory = linear_output_layer,
    new_bias: float = 0.0,
) -> Model:
    """Give the model's `"output_layer"` reference `new_nO` outputs.

    The existing outputs keep their weights, so their scores do not change; the
    new ones start with zero weights and bias `new_bias`, so their score is
    `new_bias` for every input until they are trained (random weights, as a
    fresh layer has, give large scores on a trained model's vectors: a new
    label then took over spans the others had). The grown layer is a new node (spaCy's textcat does the
    same), so an optimizer's moments and averages of the old one are not
    applied to arrays of another shape. A layer that is not initialized yet
    only gets its dimension.

    model (Model): A model with an `"output_layer"` reference whose parameters
        are `W` (nO, nI) and `b` (nO,).
    new_nO (int): The number of outputs (labels) to have; at least the current.
    make_layer (OutputLayerFactory): Builds a layer like the current one from
        `(nO, nI)`.
    new_bias (float): Bias of the new outputs.
    RETURNS (Model): The model, changed in place.
    """
    layer = model.get_ref("output_layer")
    old_nO = layer.get_dim("nO") if layer.has_dim("nO") else None
    if old_nO == new_nO:
        return model
    if old_nO is not None and new_nO < old_nO:
        raise ValueError(f"The output layer has {old_nO} outputs and cannot shrink to {new_nO}")
    if not layer.has_param("W"):
        layer.set_dim("nO", new_nO, force=True)
        _set_output_dims(model, layer, new_nO)
        return model
    nI = layer.get_dim("nI")
    grown = make_layer(new_nO, nI)
    grown.ops = layer.ops
    grown.initialize()
    W = grown.ops.xp.asarray(grown.get_param("W"))
    b = grown.ops.xp.asarray(grown.get_param("b"))
    W[:old_nO] = layer.get_param("W")
    W[old_nO:] = 0.0
    b[:old_nO] = layer.get_param("b")
    b[old_nO:] = new_bias
    grown.set_param("W", W)
    grown.set_param("b", b)
    model.replace_node(layer, grown)
    model.set_ref("output_layer", grown)
    _set_output_dims(model, grown, new_nO)
    return model


def _set_output_dims(model: Model, layer: Model, nO: int) -> None:
    """Set `nO` on every node whose output is `layer`'s: the layer's chain of
    last layers up to `model` (combinators such as `chain` and `with_groups`
    copy their last layer's `nO` when built)."""
    outputs = {layer.id}
    for node in model.walk(order="dfs_post"):
        if node.layers and node.layers[-1].id in outputs:
            outputs.add(node.id)
            if node.has_dim("nO") is not False:
                node.set_dim("nO", nO, force=True)


def resize_hook(make_layer: OutputLayerFactory = linear_output_layer) -> Callable[..., Model]:
    """The `model.attrs["resize_output"]` value for an architecture whose output
    layers `make_layer` builds."""
    return partial(resize_output, make_layer=make_layer)
