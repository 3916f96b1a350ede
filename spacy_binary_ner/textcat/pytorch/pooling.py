"""The built-in doc encoder of `binary_textcat`: token vectors pooled into one
vector per text. Imports only torch, so it follows the same contract as a
user's own module (`spacy_binary_ner.textcat.model`)."""

import torch
from torch import nn


class MeanMaxPooler(nn.Module):
    """The mean and the maximum of a text's token vectors, concatenated, through
    a hidden ReLU layer if `width` is not 0.

    n_in (int): Width of the token vectors.
    width (int): Width of the hidden layer; 0 for none (the text vectors are
        then `2 * n_in` wide: `output_width(n_in, width)`).
    dropout (float): Dropout on the text vectors in training.
    """

    def __init__(self, n_in: int, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(2 * n_in, width), nn.ReLU()) if width else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """X (torch.Tensor): Token vectors, (batch, max_len, n_in), zero past
        each text's length. lengths (torch.Tensor): Tokens per text, (batch,),
        each at least 1. RETURNS (torch.Tensor): (batch, output_width(n_in, width))."""
        lengths = lengths.to(X.device)
        mask = torch.arange(X.shape[1], device=X.device)[None, :] < lengths[:, None]
        mean = X.sum(dim=1) / lengths[:, None].to(X.dtype)
        maximum = X.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
        return self.dropout(self.hidden(torch.cat([mean, maximum], dim=1)))


def output_width(n_in: int, width: int) -> int:
    """Width of `MeanMaxPooler(n_in, width)`'s text vectors."""
    return width or 2 * n_in
