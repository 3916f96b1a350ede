"""spaCy's own `debug config`, `debug data` and `debug model`, and our
`debug-data`, succeed on every shipped config, on tiny data (the transformer
configs with a tiny local BERT in place of their checkpoint)."""

import json
from pathlib import Path

import pytest
from spacy.cli._util import app
from typer.testing import CliRunner

from spacy_binary_ner import debug_data

from .util import GOLD_RECORDS, TEACH_RECORDS, write_tiny_vectors

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.cfg"))
ASSETS = ROOT / "assets"
SAMPLE = {"teach": 300, "gold_dev": 10}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    """A randomly initialised BERT saved to a folder (as tests/test_trf_configs.py): no download."""
    pytest.importorskip("spacy_transformers")
    transformers = pytest.importorskip("transformers")
    path = tmp_path_factory.mktemp("tiny_bert")
    texts = [
        json.loads(line)["text"]
        for lang in ("en", "zh")
        for name in SAMPLE
        for line in (ASSETS / f"{lang}_{name}.jsonl").read_text(encoding="utf8").splitlines()
    ]
    words = sorted({w for t in texts for w in t.lower().split()} | {c for t in texts for c in t if c.strip()})
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words), encoding="utf8")
    transformers.BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = transformers.BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=160,
    )
    transformers.BertModel(config).save_pretrained(path)
    return str(path)


def write(path: Path, records) -> str:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf8")
    return str(path)


def overrides(config_path: Path, tmp_path: Path, request) -> list[str]:
    """--paths for the start of the embedded sample: spaCy's debug data fails
    below 100 training docs (300 teach lines are about 130 sentences)."""
    lang = config_path.stem.split("_")[0]
    lines = {name: (ASSETS / f"{lang}_{name}.jsonl").read_text(encoding="utf8").splitlines() for name in SAMPLE}
    paths = []
    for name, n_lines in SAMPLE.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines[name][:n_lines]) + "\n", encoding="utf8")
        paths.append(str(path))
    args = ["--paths.train", paths[0], "--paths.dev", paths[1]]
    if config_path.stem.endswith("_trf"):
        args += ["--vars.transformer_name", request.getfixturevalue("tiny_bert"), "--vars.transformer_width", "16"]
    if "include_static_vectors = true" in config_path.read_text(encoding="utf8"):
        words = [w for name in SAMPLE for line in lines[name] for w in json.loads(line)["text"].split()]
        args += ["--paths.vectors", str(write_tiny_vectors(tmp_path / "vectors", words))]
    return args


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_spacy_debug_commands(config_path, tmp_path, request):
    args = overrides(config_path, tmp_path, request)
    runner = CliRunner()
    for command in (["debug", "config"], ["debug", "data"], ["debug", "model"]):
        extra = ["binary_ner"] if command[1] == "model" else []
        result = runner.invoke(app, command + [str(config_path)] + extra + args)
        assert result.exit_code == 0, (command, result.output[-3000:], result.exception)
        if command[1] == "config":
            assert "Config is valid" in result.output
        elif command[1] == "data":
            assert "Pipeline can be initialized with data" in result.output
        else:
            assert "Successfully ended analysis" in result.output


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_debug_data(config_path, tmp_path, request, capsys):
    args = overrides(config_path, tmp_path, request)
    assert debug_data.main([str(config_path), "--json", str(tmp_path / "report.json")] + args) == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf8"))
    lang = config_path.stem.split("_")[0]
    expected = {}
    for line in (ASSETS / f"{lang}_teach.jsonl").read_text(encoding="utf8").splitlines()[: SAMPLE["teach"]]:
        record = json.loads(line)
        counts = expected.setdefault(record["spans"][0]["label"], {})
        counts[record["answer"]] = counts.get(record["answer"], 0) + 1
    assert report["train"]["labels"] == expected
    assert sum(c["complete"] for c in report["dev"]["labels"].values()) > 10
    assert report["overlap"]["texts"] == 0
    assert report["failed"] == []
    assert "No overlap between training and dev texts" in capsys.readouterr().out


def test_debug_data_finds_overlap_long_spans_and_conflicts(tmp_path, capsys):
    teach = TEACH_RECORDS + [
        # Accepted and then rejected: the later answer wins, the first is counted.
        {"text": "Berlin is big .", "spans": [{"start": 0, "end": 6, "label": "LOC"}], "answer": "reject"},
        {
            "text": "one two three four five six seven eight nine ten eleven twelve",
            "spans": [{"start": 0, "end": 62, "label": "MISC"}],
            "answer": "accept",
        },
    ]
    dev = GOLD_RECORDS + [{"text": "Anna lives in Paris .", "spans": [{"start": 0, "end": 4, "label": "PERSON"}]}]
    args = ["--paths.train", write(tmp_path / "teach.jsonl", teach), "--paths.dev", write(tmp_path / "dev.jsonl", dev)]
    config = Path(__file__).resolve().parent.parent / "configs" / "en_cnn.cfg"
    report = debug_data.debug_data(config, debug_data.parse_overrides(args))
    out = capsys.readouterr().out
    assert report["overlap"] == {"texts": 1, "first": ["Anna lives in Paris ."]}
    assert report["train"]["span_lengths"]["MISC"] == {"max": 12, "longer_than_max_span_length": 1}
    assert report["train"]["account"]["skipped_by_reason"]["conflicting answers"] == 1
    assert set(report["failed"]) == {"train/dev overlap", "train spans longer than max_span_length"}
    assert "conflicting answers: 1" in out and "longer than max_span_length" in out
    assert debug_data.main([str(config)] + args) == 1


def test_parse_overrides():
    assert debug_data.parse_overrides(["--paths.train", "a.jsonl", "--training.max_steps=5"]) == {
        "paths.train": "a.jsonl",
        "training.max_steps": 5,
    }
    with pytest.raises(ValueError, match="overrides look like"):
        debug_data.parse_overrides(["train.jsonl"])


def test_debug_data_is_a_command(tmp_path):
    from spacy_binary_ner.__main__ import COMMANDS, main

    assert COMMANDS["debug-data"] == "spacy_binary_ner.debug_data"
    config = ROOT / "configs" / "en_cnn.cfg"
    args = overrides(config, tmp_path, None)
    assert main(["debug-data", str(config)] + args) == 0


def test_debug_data_reports_labels_differing_in_case(tmp_path, capsys):
    teach = TEACH_RECORDS + [
        {"text": "Rome is old .", "spans": [{"start": 0, "end": 4, "label": "loc"}], "answer": "accept"},
    ]
    args = [
        "--paths.train",
        write(tmp_path / "teach.jsonl", teach),
        "--paths.dev",
        write(tmp_path / "dev.jsonl", GOLD_RECORDS),
    ]
    config = ROOT / "configs" / "en_cnn.cfg"
    assert debug_data.main([str(config), "--json", str(tmp_path / "out" / "report.json")] + args) == 0
    text = (tmp_path / "out" / "report.json").read_text(encoding="utf8")
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the report"))
    (group,) = report["labels_differing_in_case"]
    assert set(group) == {"LOC", "loc"} and group["loc"] == {"train": 1}
    assert any("differ only in case" in w and "'loc': 1 train spans" in w for w in report["warnings"])
    assert "differ only in case" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,argument",
    [
        (["{t}/missing.cfg"], "config"),
        (["{c}", "--code", "{t}/missing.py"], "--code"),
        (["{c}", "--json", "{t}"], "--json"),
        (["{c}", "train.jsonl"], "overrides look like"),
    ],
)
def test_debug_data_a_wrong_argument_is_one_line_and_exit_2(tmp_path, capsys, argv, argument):
    config = ROOT / "configs" / "en_cnn.cfg"
    argv = [a.replace("{t}", str(tmp_path)).replace("{c}", str(config)) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        debug_data.main(argv)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert argument in line
    assert list(tmp_path.iterdir()) == []
