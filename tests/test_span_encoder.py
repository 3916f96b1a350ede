import pytest
import torch

from spacy_binary_ner.models.pytorch.span_encoder import SpanEncoder


def naive(encoder: SpanEncoder, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The documented span vector, one span at a time (no LSTM, no dropout)."""
    rows = []
    for b, n in enumerate(lengths.tolist()):
        H = X[b, :n]
        for i in range(n):
            for w in range(encoder.max_span_length):
                if i + w >= n:
                    break
                z = (
                    encoder.start(H[i])
                    + encoder.end(H[i + w])
                    + encoder.inside(H[i : i + w + 1]).mean(dim=0)
                    + encoder.width.weight[w]
                )
                rows.append(torch.relu(z))
    return torch.stack(rows)


@pytest.mark.parametrize("lengths", [[3, 1, 5], [7], [0, 4, 0, 2]])
def test_span_encoder_matches_naive_definition(lengths):
    torch.manual_seed(0)
    encoder = SpanEncoder(n_in=6, hidden_width=5, max_span_length=3, lstm_depth=0, dropout=0.0)
    encoder.eval()
    lengths_t = torch.tensor(lengths)
    X = torch.randn(len(lengths), max(lengths), 6)
    expected = naive(encoder, X, lengths_t)
    with torch.no_grad():
        fast = encoder(X, lengths_t)
    trained = encoder(X, lengths_t)  # the autograd path computes the same values
    assert fast.shape == expected.shape
    assert torch.allclose(fast, expected, atol=1e-5)
    assert torch.allclose(trained, expected, atol=1e-5)
    trained.sum().backward()
    assert encoder.start.weight.grad is not None
