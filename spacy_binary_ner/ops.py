"""Choice of Thinc's CPU matrix products, from a config or from Python.

Thinc's `NumpyOps` multiplies matrices with the BLIS library bundled in the
`blis` wheel. On CPUs where that build falls back to a slow kernel, numpy's own
BLAS (OpenBLAS in the PyPI wheels) is several times faster: on this project's
AMD EPYC machine 77 against 23 GFLOP/s for the CNN tok2vec's shapes
(`bench/loop_latency.py --split --blas numpy` compares on your machine). `NumpyOps(use_blis=False)` is
Thinc's own switch; these helpers set it.
"""

import contextlib
from typing import Callable, Iterator, Type

from spacy.language import Language
from spacy.util import registry
from thinc.api import NumpyOps, get_current_ops, set_current_ops

CPU_OPS_CALLBACK = "spacy-binary-ner.cpu_ops.v1"


def use_cpu_ops(use_blis: bool) -> bool:
    """Make Thinc's current ops `NumpyOps(use_blis=use_blis)`, so the models
    created afterwards (by `spacy.load`, `spacy.blank(...).add_pipe`,
    `spacy train`) multiply with BLIS or with numpy's BLAS. Ops on a GPU are
    left alone.

    use_blis (bool): True for Thinc's default (BLIS), False for numpy's BLAS.
    RETURNS (bool): Whether the current ops were CPU ops and were set.
    """
    if type(get_current_ops()) is not NumpyOps:
        return False
    set_current_ops(NumpyOps(use_blis=use_blis))
    return True


@contextlib.contextmanager
def cpu_ops(use_blis: bool) -> Iterator[None]:
    """`use_cpu_ops` for the models built inside the block: the process's
    ops are restored after it. Ops on a GPU are left alone.

    use_blis (bool): True for Thinc's default (BLIS), False for numpy's BLAS.
    """
    before = get_current_ops()
    use_cpu_ops(use_blis)
    try:
        yield
    finally:
        set_current_ops(before)


@registry.callbacks(CPU_OPS_CALLBACK)
def create_cpu_ops_callback(use_blis: bool = False) -> Callable[[Type[Language]], Type[Language]]:
    """A `[nlp] before_creation` callback choosing the CPU matrix products
    before any model is built:

        [nlp.before_creation]
        @callbacks = "spacy-binary-ner.cpu_ops.v1"
        use_blis = false

    It sets Thinc's current ops for the whole process (Thinc keeps one current
    ops per thread), so pipelines loaded later in the same process get them too.
    On a GPU it does nothing.

    use_blis (bool): True for Thinc's default (BLIS), False for numpy's BLAS.
    """

    def before_creation(lang_cls: Type[Language]) -> Type[Language]:
        use_cpu_ops(use_blis)
        return lang_cls

    return before_creation
