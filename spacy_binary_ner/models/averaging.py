"""The optimizer's moving average of the weights, for the PyTorch part too.

spaCy evaluates and saves a pipeline inside `nlp.use_params(optimizer.averages)`
when `[training.optimizer] use_averages = true`. Thinc's optimizer keeps a
PyTorch parameter's average under the key `(shim.id, name)`, but
`PyTorchShim.use_params` looks for `"pytorch_{id}_{name}"` and finds nothing,
so without this the Thinc layers were averaged and the PyTorch ones were not:
a model whose parts came from different weights.
"""

import contextlib
from typing import Dict, Iterator

import torch
from thinc.api import Model, xp2torch
from thinc.shims import PyTorchShim


class AveragingPyTorchShim(PyTorchShim):
    """A `PyTorchShim` whose `use_params` also reads Thinc's optimizer keys."""

    @contextlib.contextmanager
    def use_params(self, params: Dict) -> Iterator[None]:
        current = self._model.state_dict()
        state = {}
        for key, value in params.items():
            if (
                isinstance(key, tuple)
                and len(key) == 2
                and key[0] == self.id
                and key[1] in current
                and tuple(current[key[1]].shape) == tuple(value.shape)
            ):
                state[key[1]] = xp2torch(value, device=self.device)
        if not state:
            with super().use_params(params):
                yield
            return
        backup = {name: tensor.detach().clone() for name, tensor in current.items()}
        with torch.no_grad():
            self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            with torch.no_grad():
                self._model.load_state_dict(backup)


def with_averaging(wrapper: Model) -> Model:
    """Make the shims of a `PyTorchWrapper` model averaging ones, in place.

    wrapper (Model): A model made by Thinc's `PyTorchWrapper_v2`.
    RETURNS (Model): The same model.
    """
    for shim in wrapper.shims:
        if type(shim) is PyTorchShim:
            shim.__class__ = AveragingPyTorchShim
    return wrapper
