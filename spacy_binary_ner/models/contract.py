"""The contract between `binary_ner` and a user's own PyTorch module.

`spacy-binary-ner.TorchSpanScorer.v1` puts any `torch.nn.Module` behind the
binary loss. The module is built by a function the user registers, e.g.
`@spacy.registry.misc("my.BiLSTM.v1")`, and is named in the config as
`module = {"@misc": "my.BiLSTM.v1", ...}`. It is built once, from the config's
numbers (sizes are config values, shared by interpolation), and its weights are
saved and loaded with the pipeline (`nlp.to_disk` / `spacy.load`) through its
`state_dict`: nothing else of the module is saved, so everything it needs must
come from its constructor arguments.

What the module receives: `module(inputs, lengths)`
----------------------------------------------------

- `lengths`: `torch.LongTensor` of shape `(batch,)`, **on the CPU** (as
  `torch.nn.utils.rnn.pack_padded_sequence` wants it), the number of tokens of
  each doc. Every length is at least 1: docs without tokens never reach the
  module.
- `inputs`, one of two kinds, chosen in the architecture's config:

  - **token ids** (no `tok2vec` in the config; the module owns its embedding):
    `torch.LongTensor` of shape `(batch, max_len, n_attrs)`. Entry `[b, i, a]`
    is the hash of token `i`'s attribute `id_attrs[a]` (e.g. `NORM`, `SHAPE`)
    modulo `n_ids`, so every id is in `[0, n_ids)`: an `nn.Embedding(n_ids, d)`
    can take them directly. Ids are hashes of strings, the same on every
    machine, so no vocabulary has to be saved with the model; distinct strings
    may share an id.
  - **token vectors** (a `tok2vec` in the config, e.g. `spacy.Tok2Vec.v2`, a
    `Tok2VecListener` or a `TransformerListener`): `torch.FloatTensor` of shape
    `(batch, max_len, n_in)`, on the model's device, requiring grad in
    training, so the tok2vec learns too.

  Positions at or past a doc's length are padding (ids 0, vectors 0). They
  must not change the outputs at real positions: use `lengths` (packed
  sequences, masks).

What the module returns: one `torch.Tensor`, float, of one of two layouts
------------------------------------------------------------------------

- `output = "tokens"`: token vectors of shape `(batch, max_len, width)`.
  Rows at padding positions are ignored. `binary_ner`'s own span encoder (the
  one of `spacy-binary-ner.SpanScorer.v1`, without its BiLSTM) turns them into
  span vectors.
- `output = "spans"`: span vectors of shape `(n_spans, width)`, one row per
  candidate span, in the pipe's order: by doc, then start token, then width,
  for every span `(start, start + w)` with `w < max_span_length` that fits in
  its doc. `span_index(lengths, max_span_length)` below lists them in that
  order.

`width` is an argument of the architecture; the module must return exactly
that many columns.

Why the module does not return one score per label
--------------------------------------------------

The labels are known only when the pipe is initialized, after the module is
built, and the pipe owns the last layer: `BinaryNER.initialize` sets the label
count (`nO`) of the model's `"output_layer"` reference and starts its bias at a
small prior probability (a Thinc `Linear`, from `width` to one logit per
label). So the module returns vectors, and the architecture adds that layer.

Training details
----------------

- spaCy's `dropout` setting does not reach PyTorch: put dropout inside the
  module, as a constructor argument. `module.train()` / `module.eval()` are
  switched for you.
- Thinc's optimizer (the config's `[training.optimizer]`) updates the module's
  parameters; do not create a torch optimizer.
- A large embedding table: make it `nn.Embedding(n_ids, d, sparse=True)`. The
  architecture gives every parameter a dense gradient buffer that lives from
  step to step, and a sparse gradient is added into it in place. A dense
  embedding allocates a new table-sized gradient at every step instead, which
  on CPU fragments glibc's heap: the process grew by the table's size per step
  (7.7 MB for 20000 x 96) until it was killed at 13.8 GB.

This module and `spacy_binary_ner.spans`, where `span_index` is written,
import only torch and numpy, so a user's module file may use `span_index`
without depending on spaCy.
"""

from typing import Tuple

import torch

from ..spans import span_index

__all__ = ["OUTPUTS", "OUTPUT_SPANS", "OUTPUT_TOKENS", "expected_shape", "span_index"]

OUTPUT_TOKENS = "tokens"
OUTPUT_SPANS = "spans"
OUTPUTS = (OUTPUT_TOKENS, OUTPUT_SPANS)


def expected_shape(
    output: str, lengths: torch.Tensor, max_len: int, width: int, max_span_length: int
) -> Tuple[int, ...]:
    """The shape the module's output must have.

    output (str): "tokens" or "spans".
    lengths (torch.Tensor): Number of tokens per doc, shape (batch,).
    max_len (int): Padded length of the batch.
    width (int): Width of the module's vectors.
    max_span_length (int): Longest span, in tokens.
    RETURNS (Tuple[int, ...]): (batch, max_len, width) for "tokens",
        (n_spans, width) for "spans".
    """
    if output == OUTPUT_TOKENS:
        return (len(lengths), max_len, width)
    return (len(span_index(lengths, max_span_length)[0]), width)
