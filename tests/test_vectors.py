"""configs/en_cnn_vectors.cfg trains in-process with a tiny vectors table the
test makes, and the trained pipeline reads those vectors; the benchmark gives
every system the same vectors."""

import importlib.util
import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import load_config

from .util import GOLD_RECORDS, TEACH_RECORDS, write_tiny_vectors

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "en_cnn_vectors.cfg"


def write(path: Path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return str(path)


def small(config) -> None:
    """Shrink the config's layers so the test trains in seconds."""
    model = config["components"]["binary_ner"]["model"]
    model["hidden_width"] = model["lstm_width"] = 16
    model["tok2vec"]["embed"]["width"] = model["tok2vec"]["encode"]["width"] = 16
    model["tok2vec"]["encode"]["depth"] = 1


def test_vectors_config_is_the_cnn_config_with_static_vectors():
    vectors = load_config(CONFIG, interpolate=False)
    plain = load_config(REPO / "configs" / "en_cnn.cfg", interpolate=False)
    embed = vectors["components"]["binary_ner"]["model"]["tok2vec"]["embed"]
    assert embed["include_static_vectors"] is True
    assert vectors["initialize"]["vectors"] == "${paths.vectors}"
    embed["include_static_vectors"] = False
    assert vectors == plain


def test_vectors_config_trains_with_tiny_vectors_and_uses_them(tmp_path):
    words = [w for r in TEACH_RECORDS + GOLD_RECORDS for w in r["text"].split()]
    vectors = write_tiny_vectors(tmp_path / "vectors", words, width=8)
    config = load_config(CONFIG)
    small(config)
    config["paths"]["train"] = write(tmp_path / "teach.jsonl", TEACH_RECORDS)
    config["paths"]["train_complete"] = write(tmp_path / "gold.jsonl", GOLD_RECORDS)
    config["paths"]["dev"] = str(tmp_path / "gold.jsonl")
    config["paths"]["vectors"] = str(vectors)
    config["training"]["max_steps"] = 6
    config["training"]["eval_frequency"] = 3
    nlp = init_nlp(config)
    assert nlp.vocab.vectors.shape == (len(set(words)), 8)
    (tmp_path / "out").mkdir()
    train(nlp, tmp_path / "out")
    loaded = spacy.load(tmp_path / "out" / "model-best")
    assert loaded.vocab.vectors.shape == (len(set(words)), 8)
    assert loaded.vocab.vectors.name == "tiny_test_vectors"
    pipe = loaded.get_pipe("binary_ner")
    doc = loaded.make_doc("Anna met Shaka Khan in London .")
    before = pipe.model.ops.to_numpy(pipe.predict([doc]))
    loaded.vocab.vectors.data[:] = 0.0
    after = pipe.model.ops.to_numpy(pipe.predict([doc]))
    # The scores move with the vectors: the tok2vec reads them.
    assert not numpy.allclose(before, after)


def test_vectors_config_without_vectors_names_the_missing_setting(tmp_path):
    config = load_config(CONFIG)
    small(config)
    config["paths"]["train"] = write(tmp_path / "teach.jsonl", TEACH_RECORDS)
    config["paths"]["train_complete"] = write(tmp_path / "gold.jsonl", GOLD_RECORDS)
    config["paths"]["dev"] = str(tmp_path / "gold.jsonl")
    with pytest.raises(ValueError, match=r"no vectors.*\[initialize\] vectors.*--paths.vectors"):
        init_nlp(config)


def load_bench():
    spec = importlib.util.spec_from_file_location("binary_benchmark", REPO / "bench" / "binary_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("system", ["binary_ner", "ner", "beam_ner", "binary_ner_gold", "ner_gold"])
def test_benchmark_gives_every_system_the_vectors(system, tmp_path):
    bench = load_bench()
    config = bench.make_config(system, "en", 10, 5, 0, vectors=tmp_path / "vectors")
    assert config["paths"]["vectors"] == str(tmp_path / "vectors")
    (component,) = config["components"].values()
    assert component["model"]["tok2vec"]["embed"]["include_static_vectors"] is True
    assert (
        bench.make_config(system, "en", 10, 5, 0)["components"][config["nlp"]["pipeline"][0]]["model"]["tok2vec"][
            "embed"
        ]["include_static_vectors"]
        is False
    )


@pytest.mark.parametrize("system", ["ner", "beam_ner", "ner_gold", "binary_ner_gold"])
def test_benchmark_tok2vec_settings_reach_every_system(system):
    bench = load_bench()
    rows = "components.binary_ner.model.tok2vec.embed.rows=[20000,1000,10000,2500]"
    config = bench.make_config(system, "en", 10, 5, 0, [rows, "components.binary_ner.unknown_weight=0.5"])
    (component,) = config["components"].values()
    assert component["model"]["tok2vec"]["embed"]["rows"] == [20000, 1000, 10000, 2500]
    assert component["factory"] == system.removesuffix("_gold")
    if system == "binary_ner_gold":
        assert component["unknown_weight"] == 0.5
    else:
        assert "unknown_weight" not in component
