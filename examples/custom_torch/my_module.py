"""A user's own PyTorch BiLSTM, registered for spacy-binary-ner.

It is written against the contract in `spacy_binary_ner.models.contract`: it
gets hashed token ids of shape (batch, max_len, n_attrs) and the lengths, and
returns one vector of `width` per token. It imports only torch, and spaCy's
registry for the one registration function.

    python -m spacy train examples/custom_torch/config.cfg --code examples/custom_torch/my_module.py ...
"""

import torch
from spacy.util import registry
from torch import nn


class BiLSTM(nn.Module):
    def __init__(self, n_ids: int, width: int, embed_width: int, depth: int, dropout: float) -> None:
        super().__init__()
        # sparse=True: each step touches only the rows of the batch's ids.
        self.embed = nn.Embedding(n_ids, embed_width, sparse=True)
        self.lstm = nn.LSTM(embed_width, width // 2, num_layers=depth, bidirectional=True, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # One table for all attributes (NORM, SHAPE, ...): their embeddings are summed.
        X = self.dropout(self.embed(ids).sum(dim=2))
        packed = nn.utils.rnn.pack_padded_sequence(X, lengths, batch_first=True, enforce_sorted=False)
        H, _ = self.lstm(packed)
        H, _ = nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=ids.shape[1])
        return self.dropout(H)


@registry.misc("my.BiLSTM.v1")
def make_bilstm(n_ids: int, width: int, embed_width: int = 96, depth: int = 1, dropout: float = 0.2) -> nn.Module:
    return BiLSTM(n_ids, width, embed_width, depth, dropout)
