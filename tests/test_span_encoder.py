import numpy
import pytest
import torch

from spacy_binary_ner.models.pytorch.cpu_kernels import padded_bilstm
from spacy_binary_ner.models.pytorch.span_encoder import SpanEncoder, span_cells


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


def reference_cells(start, end, inside, width_weight, index):
    """The cells by plain autograd-traced tensor ops (the formula, slice by slice)."""
    n, L = start.shape[0], width_weight.shape[0]
    pad = start.new_zeros(L, start.shape[1])
    end_p = torch.cat([end, pad])
    cumsum = torch.cat([pad[:1], inside.cumsum(dim=0), pad])
    cells = torch.stack(
        [
            (cumsum[w + 1 : w + 1 + n] - cumsum[:n]) / (w + 1) + start + end_p[w : w + n] + width_weight[w]
            for w in range(L)
        ]
    )
    return cells.reshape(L * n, -1)[index]


@pytest.mark.parametrize("lengths,L", [([3, 1, 5], 3), ([6], 8), ([2, 0, 4], 1)])
def test_span_cells_gradient_matches_autograd(lengths, L):
    from spacy_binary_ner.models.pytorch.cpu_kernels import SpanCells as _SpanCells

    torch.manual_seed(0)
    n, hidden = sum(lengths), 4
    lengths_t = torch.tensor(lengths)
    doc_last = torch.repeat_interleave(lengths_t.cumsum(0) - 1, lengths_t)
    valid = (torch.arange(n)[:, None] + torch.arange(L)[None, :]) <= doc_last[:, None]
    first, width = valid.nonzero(as_tuple=True)
    index = width * n + first
    inputs = [torch.randn(n, hidden, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    inputs.append(torch.randn(L, hidden, dtype=torch.float64, requires_grad=True))
    weights = torch.randn(len(index), hidden, dtype=torch.float64)
    ours = _SpanCells.apply(*inputs, index)
    expected = reference_cells(*inputs, index)
    assert torch.allclose(ours, expected)
    grads = torch.autograd.grad((ours * weights).sum(), inputs)
    expected_grads = torch.autograd.grad((expected * weights).sum(), inputs)
    for got, want in zip(grads, expected_grads):
        assert torch.allclose(got, want, atol=1e-10)
    assert torch.autograd.gradcheck(lambda *xs: _SpanCells.apply(*xs, index), inputs)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_rate_scale_and_gradient(p):
    from spacy_binary_ner.models.pytorch.cpu_kernels import CpuDropout as _CpuDropout

    torch.manual_seed(0)
    x = torch.ones(400, 250, requires_grad=True)
    y = _CpuDropout.apply(x, p)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.01  # 100,000 draws: 4 standard deviations is under 0.007
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1.0 / (1.0 - p)))
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad == 0, y == 0)  # the gradient passes where the value did
    assert torch.allclose(x.grad[y != 0], torch.full_like(y[y != 0], 2.0 / (1.0 - p)))
    # Every 16-bit lane of the random words is used without bias.
    lanes = (y == 0).reshape(-1)[: 4 * 20000].view(-1, 4).float().mean(dim=0)
    assert (lanes - p).abs().max() < 0.02


def test_encoder_dropout_only_in_training():
    torch.manual_seed(0)
    encoder = SpanEncoder(n_in=6, hidden_width=5, max_span_length=3, lstm_depth=0, dropout=0.5)
    X, lengths = torch.randn(2, 4, 6), torch.tensor([4, 3])
    encoder.eval()
    assert torch.equal(encoder(X, lengths), encoder(X, lengths))
    encoder.train()
    assert not torch.equal(encoder(X, lengths), encoder(X, lengths))


@pytest.mark.parametrize("lstm_depth,lengths", [(1, [5, 1, 3]), (2, [4, 0, 7, 2]), (1, [6])])
def test_bilstm_equals_packed_lstm(lstm_depth, lengths):
    """The padded two-direction BiLSTM computes what nn.LSTM computes on packed
    sequences, values and gradients, on every real token."""
    torch.manual_seed(0)
    encoder = SpanEncoder(n_in=6, hidden_width=5, max_span_length=3, lstm_width=8, lstm_depth=lstm_depth, dropout=0.0)
    encoder.double()
    lengths_t = torch.tensor(lengths)
    X = torch.randn(len(lengths), max(lengths), 6, dtype=torch.float64)
    real = (torch.arange(max(lengths))[None, :] < lengths_t[:, None])[:, :, None]
    X = X * real  # padding is zeros, as Thinc pads
    X1, X2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    ours = padded_bilstm(encoder.lstm, X1, lengths_t, encoder.training, encoder._drop)
    packed = torch.nn.utils.rnn.pack_padded_sequence(X2, lengths_t.clamp(min=1), batch_first=True, enforce_sorted=False)
    expected, _ = encoder.lstm(packed)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(expected, batch_first=True, total_length=max(lengths))
    assert ours.shape == expected.shape == (len(lengths), max(lengths), 8)
    assert torch.allclose(ours * real, expected * real, atol=1e-12)
    weights = torch.randn_like(ours) * real
    (ours * weights).sum().backward()
    (expected * weights).sum().backward()
    assert torch.allclose(X1.grad, X2.grad, atol=1e-12)


@pytest.mark.parametrize("lstm_depth", [0, 1, 2])
@pytest.mark.parametrize("lengths", [[3, 1, 5], [0, 4, 0, 2], [6]])
def test_kernels_equal_the_reference(lstm_depth, lengths):
    """The CPU kernels (`kernels=True`) compute what the module's plain code
    computes: span vectors, fused scores, and every gradient."""
    torch.manual_seed(0)
    fast = SpanEncoder(n_in=6, hidden_width=5, max_span_length=3, lstm_width=4, lstm_depth=lstm_depth, dropout=0.0)
    fast.double()
    plain = SpanEncoder(
        n_in=6, hidden_width=5, max_span_length=3, lstm_width=4, lstm_depth=lstm_depth, dropout=0.0, kernels=False
    )
    plain.double()
    plain.load_state_dict(fast.state_dict())
    lengths_t = torch.tensor(lengths)
    real = (torch.arange(max(lengths))[None, :] < lengths_t[:, None])[:, :, None]
    X = torch.randn(len(lengths), max(lengths), 6, dtype=torch.float64) * real
    X1, X2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    ours, reference = fast(X1, lengths_t), plain(X2, lengths_t)
    assert torch.allclose(ours, reference, atol=1e-12)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    assert torch.allclose(X1.grad, X2.grad, atol=1e-12)
    for (name, p1), (_, p2) in zip(fast.named_parameters(), plain.named_parameters()):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-12), name
    fast.eval()
    plain.eval()
    weight, bias = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(fast.score(X, lengths_t, weight, bias), plain.score(X, lengths_t, weight, bias))


def test_reference_span_cells_follow_the_formula():
    torch.manual_seed(0)
    n, L, hidden = 5, 3, 4
    start, end, inside = (torch.randn(n, hidden, dtype=torch.float64) for _ in range(3))
    width = torch.randn(L, hidden, dtype=torch.float64)
    index = torch.tensor([0, n + 1, 2 * n + 2, 4])  # (w=0, i=0), (w=1, i=1), (w=2, i=2), (w=0, i=4)
    cells = span_cells(start, end, inside, width, index)
    for row, (w, i) in enumerate([(0, 0), (1, 1), (2, 2), (0, 4)]):
        expected = start[i] + end[i + w] + inside[i : i + w + 1].mean(dim=0) + width[w]
        assert torch.allclose(cells[row], expected)
