import numpy
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


def test_output_layer_matches_thinc_linear():
    from thinc.api import Linear

    from spacy_binary_ner.models.span_scorer import _output_layer

    rng = numpy.random.default_rng(0)
    X = rng.normal(size=(13, 7)).astype("float32")
    dY = rng.normal(size=(13, 5)).astype("float32")
    ours, thincs = _output_layer(nO=5, nI=7), Linear(nO=5, nI=7)
    thincs.initialize(X=X)
    ours.initialize(X=X)
    assert ours.name == thincs.name and ours.param_names == thincs.param_names
    assert ours.get_param("W").shape == thincs.get_param("W").shape
    for name in ("W", "b"):
        ours.set_param(name, thincs.get_param(name) + rng.normal(size=thincs.get_param(name).shape).astype("float32"))
        thincs.set_param(name, ours.get_param(name).copy())
    Y1, back1 = ours.begin_update(X)
    Y2, back2 = thincs.begin_update(X)
    numpy.testing.assert_allclose(Y1, Y2, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_allclose(back1(dY), back2(dY), rtol=1e-5, atol=1e-5)
    for name in ("W", "b"):
        numpy.testing.assert_allclose(ours.get_grad(name), thincs.get_grad(name), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lstm_depth", [0, 1])
@pytest.mark.parametrize("lengths", [[3, 1, 5], [0, 4, 0, 2]])
def test_span_encoder_scores_equal_linear_of_span_vectors(lstm_depth, lengths):
    torch.manual_seed(0)
    encoder = SpanEncoder(n_in=6, hidden_width=5, max_span_length=3, lstm_width=4, lstm_depth=lstm_depth)
    encoder.eval()
    lengths_t = torch.tensor(lengths)
    X = torch.randn(len(lengths), max(lengths), 6)
    weight, bias = torch.randn(4, 5), torch.randn(4)
    expected = encoder(X, lengths_t) @ weight.t() + bias
    with torch.no_grad():
        fused = encoder(X, lengths_t, output_weight=weight, output_bias=bias)
    assert fused.shape == (expected.shape[0], 4)
    assert torch.allclose(fused, expected, atol=1e-5)
    # With autograd on, the same scores through the differentiable path.
    scored = encoder(X, lengths_t, output_weight=weight, output_bias=bias)
    assert torch.allclose(scored, expected, atol=1e-5)
    scored.sum().backward()
    assert encoder.start.weight.grad is not None
