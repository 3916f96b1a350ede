"""A user's own torch module behind binary_ner: spacy-binary-ner.TorchSpanScorer.v1
and the contract in spacy_binary_ner.models.contract."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.util import fix_random_seed, registry
from torch import nn

from spacy_binary_ner.data import records_to_examples
from spacy_binary_ner.models.contract import expected_shape, span_index
from spacy_binary_ner.targets import n_span_cells, span_cells

from .util import TEACH_RECORDS

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "custom_torch"
TEXT = "Anna lives in Paris ."


class TokenBiLSTM(nn.Module):
    """Ids in, one vector per token out (output = "tokens")."""

    def __init__(self, n_ids: int, width: int, sparse: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_ids, 16, sparse=sparse)
        self.lstm = nn.LSTM(16, width // 2, bidirectional=True, batch_first=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(ids).sum(dim=2), lengths, batch_first=True, enforce_sorted=False
        )
        H, _ = self.lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(H, batch_first=True, total_length=ids.shape[1])[0]


class SpanEndpoints(nn.Module):
    """Vectors in, one vector per candidate span out (output = "spans")."""

    def __init__(self, n_in: int, width: int, max_span_length: int) -> None:
        super().__init__()
        self.max_span_length = max_span_length
        self.project = nn.Linear(2 * n_in, width)

    def forward(self, X: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        doc, start, end = span_index(lengths, self.max_span_length)
        return torch.relu(self.project(torch.cat([X[doc, start], X[doc, end]], dim=1)))


class WrongShape(nn.Module):
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.zeros(ids.shape[0], ids.shape[1], 3)


@registry.misc("test_custom_module.TokenBiLSTM.v1")
def make_token_bilstm(n_ids: int, width: int, sparse: bool = False) -> nn.Module:
    return TokenBiLSTM(n_ids, width, sparse)


@registry.misc("test_custom_module.SpanEndpoints.v1")
def make_span_endpoints(n_in: int, width: int, max_span_length: int) -> nn.Module:
    return SpanEndpoints(n_in, width, max_span_length)


@registry.misc("test_custom_module.WrongShape.v1")
def make_wrong_shape() -> nn.Module:
    return WrongShape()


@registry.misc("test_custom_module.NotAModule.v1")
def make_not_a_module() -> str:
    return "a string"


def tokens_model(**overrides) -> dict:
    model = {
        "@architectures": "spacy-binary-ner.TorchSpanScorer.v1",
        "output": "tokens",
        "width": 16,
        "max_span_length": 3,
        "hidden_width": 16,
        "id_attrs": ["NORM", "SHAPE"],
        "n_ids": 500,
        "module": {"@misc": "test_custom_module.TokenBiLSTM.v1", "n_ids": 500, "width": 16},
    }
    model.update(overrides)
    return model


def spans_model() -> dict:
    return {
        "@architectures": "spacy-binary-ner.TorchSpanScorer.v1",
        "output": "spans",
        "width": 16,
        "max_span_length": 3,
        "tok2vec": {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "width": 12,
            "depth": 1,
            "embed_size": 300,
            "window_size": 1,
            "maxout_pieces": 2,
            "subword_features": True,
            "pretrained_vectors": None,
        },
        "module": {"@misc": "test_custom_module.SpanEndpoints.v1", "n_in": 12, "width": 16, "max_span_length": 3},
    }


def make_nlp(model: dict):
    nlp = spacy.blank("en")
    # candidates_threshold 0: every scored span is kept, so reload is compared on all of them.
    nlp.add_pipe("binary_ner", config={"candidates_threshold": 0.0, "model": model})
    return nlp


@pytest.mark.parametrize("lengths", [[1], [5, 1, 3], [2, 7], [10, 10]])
@pytest.mark.parametrize("max_span_length", [1, 3, 4])
def test_span_index_is_the_pipes_order(lengths, max_span_length):
    doc, start, end = span_index(torch.tensor(lengths), max_span_length)
    expected = []
    for d, n in enumerate(lengths):
        starts, widths = numpy.nonzero(span_cells(n, max_span_length))
        expected += [(d, int(s), int(s + w)) for s, w in zip(starts, widths)]
    assert list(zip(doc.tolist(), start.tolist(), end.tolist())) == expected
    assert expected_shape("spans", torch.tensor(lengths), max(lengths), 8, max_span_length) == (
        sum(n_span_cells(n, max_span_length) for n in lengths),
        8,
    )


@pytest.mark.parametrize("model", [tokens_model(), spans_model()], ids=["tokens-from-ids", "spans-from-tok2vec"])
def test_custom_module_trains_saves_and_loads(model, tmp_path):
    fix_random_seed(0)
    nlp = make_nlp(model)
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01  # a few steps, not hundreds
    assert nlp.get_pipe("binary_ner").model.get_ref("output_layer").get_dim("nO") == 2
    losses = [nlp.update(examples, sgd=optimizer)["binary_ner"] for _ in range(30)]
    assert losses[-1] < losses[0] / 2
    doc = nlp(TEXT)
    assert [(e.text, e.label_) for e in doc.ents] == [("Anna", "PERSON"), ("Paris", "LOC")]
    nlp.to_disk(tmp_path / "pipeline")
    doc2 = spacy.load(tmp_path / "pipeline")(TEXT)
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in doc2.ents]
    scores = doc.spans["binary_ner_scores"].attrs["scores"]
    assert len(scores) == 12 * 2  # 5 tokens, spans up to 3 long, 2 labels
    assert list(scores) == pytest.approx(list(doc2.spans["binary_ner_scores"].attrs["scores"]), rel=1e-5)


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_gradients_accumulate_in_one_dense_buffer(sparse):
    """Thinc's optimizer needs dense gradients; a sparse embedding's gradient
    lands in a dense buffer kept from step to step (no table-sized gradient
    allocated per step)."""
    fix_random_seed(0)
    nlp = make_nlp(
        tokens_model(
            module={
                "@misc": "test_custom_module.TokenBiLSTM.v1",
                "n_ids": 500,
                "width": 16,
                "sparse": sparse,
            }
        )
    )
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    weight = nlp.get_pipe("binary_ner").model.get_ref("module").layers[0].shims[0]._model.embed.weight
    before = weight.detach().clone()
    buffer = weight.grad.data_ptr()
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
        assert weight.grad.layout == torch.strided and weight.grad.data_ptr() == buffer
        assert not weight.grad.any()  # zeroed by the optimizer step
    assert not torch.equal(weight.detach(), before)


def test_gradient_reaches_the_tok2vec():
    fix_random_seed(0)
    nlp = make_nlp(spans_model())
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("binary_ner").model.get_ref("tok2vec")
    before = [tok2vec.get_param("E").copy() for tok2vec in tok2vec.walk() if tok2vec.has_param("E")]
    nlp.update(examples, sgd=optimizer)
    after = [tok2vec.get_param("E") for tok2vec in tok2vec.walk() if tok2vec.has_param("E")]
    assert before and any(not numpy.allclose(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize("model", [tokens_model(), spans_model()], ids=["tokens", "spans"])
def test_empty_docs_never_reach_the_module(model):
    nlp = make_nlp(model)
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    docs = list(nlp.pipe(["", TEXT, "", "Paris"]))
    assert [len(d.spans["binary_ner_scores"]) for d in docs] == [0, 12 * 2, 0, 2]
    empty = records_to_examples(nlp, [{"text": "x", "spans": [], "complete": True}], complete=True)
    empty[0].predicted = nlp.make_doc("")
    losses = nlp.update([empty[0]] + examples[:2], sgd=optimizer)
    assert numpy.isfinite(losses["binary_ner"])
    assert nlp.update([empty[0]], sgd=optimizer)["binary_ner"] == 0.0


def test_wrong_output_shape_names_the_contract():
    nlp = make_nlp(tokens_model(module={"@misc": "test_custom_module.WrongShape.v1"}))
    examples = records_to_examples(nlp, TEACH_RECORDS)
    with pytest.raises(ValueError, match=r"output = 'tokens'.*\(\d+, \d+, 16\).*returned \(\d+, \d+, 3\).*contract"):
        nlp.initialize(lambda: examples)


def test_module_function_must_return_a_module():
    with pytest.raises(TypeError, match="must be a torch.nn.Module.*returned a str"):
        make_nlp(tokens_model(module={"@misc": "test_custom_module.NotAModule.v1"}))


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"output": "logits"}, "output must be one of"),
        ({"id_attrs": ["NOT_AN_ATTR"]}, "id_attrs must name spaCy token attributes"),
        ({"n_ids": 0}, "n_ids must be at least 1"),
    ],
)
def test_bad_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        make_nlp(tokens_model(**bad))


def test_example_module_imports_only_torch_and_the_registry():
    tree = ast.parse((EXAMPLE / "my_module.py").read_text(encoding="utf8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert imported == {"torch", "torch.nn", "spacy.util.registry"}


@pytest.mark.parametrize("config", ["config.cfg", "config_zh.cfg"])
def test_example_configs_resolve(config):
    spacy.util.import_file("custom_torch_example", EXAMPLE / "my_module.py")
    cfg = spacy.util.load_config(EXAMPLE / config)
    nlp = spacy.util.load_model_from_config(cfg, auto_fill=True, validate=True)
    assert (
        nlp.get_pipe("binary_ner").model.get_ref("module").get_dim("nO")
        == cfg["components"]["binary_ner"]["model"]["width"]
    )
    assert spacy.util.load_model_from_config(nlp.config, auto_fill=False).config == nlp.config


def test_example_trains_with_spacy_train_and_loads(tmp_path):
    """The README's command (with a slice of the sample, for speed): only the
    user's registration file as --code."""
    for name, n in (("en_teach.jsonl", 60), ("en_gold_eval.jsonl", 5)):
        lines = (REPO / "assets" / name).read_text(encoding="utf8").splitlines()[:n]
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    out = tmp_path / "training"
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "train",
        str(EXAMPLE / "config.cfg"),
        "--code",
        str(EXAMPLE / "my_module.py"),
        "--paths.train",
        str(tmp_path / "en_teach.jsonl"),
        "--paths.dev",
        str(tmp_path / "en_gold_eval.jsonl"),
        "--training.max_steps",
        "4",
        "--training.eval_frequency",
        "2",
        "--output",
        str(out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    spacy.util.import_file("custom_torch_example", EXAMPLE / "my_module.py")
    nlp = spacy.load(out / "model-last")
    ner = nlp.get_pipe("binary_ner")
    doc = nlp.make_doc("Shares of Vela Systems rose after the news .")
    assert ner.labels and ner.predict([doc]).shape == (n_span_cells(len(doc), 10), len(ner.labels))


def test_span_output_is_scored_in_windows_like_the_whole_doc():
    # The endpoint module's context is the CNN's one token each side: windows
    # with 8 tokens of context score every span as one call on the whole doc.
    nlp = make_nlp(spans_model())
    nlp.initialize(lambda: records_to_examples(nlp, TEACH_RECORDS))
    model = nlp.get_pipe("binary_ner").model
    model.attrs["window"], model.attrs["margin"] = 40, 8
    docs = [nlp.make_doc(" ".join(f"w{i % 23}" for i in range(n))) for n in (5, 300, 61)]
    whole, windowed = model.layers[0].predict(docs), model.predict(docs)
    assert windowed.shape == whole.shape
    assert numpy.allclose(windowed, whole, atol=1e-4)
