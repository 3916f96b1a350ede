"""The reader's settings are written once (`ReaderSettings`): every place that
takes them (the registered reader, `TeachReader`, `records_to_examples`,
`read_teach_data`, `convert` and its flags) takes all of them, and a setting
added in one place only fails here."""

import dataclasses
import inspect
import json
import sys

import pytest
import spacy
from spacy.util import registry

from spacy_binary_ner.__main__ import main as cli
from spacy_binary_ner.data import READER_NAME, ReaderSettings, TeachReader, read_teach_data, records_to_examples
from spacy_binary_ner.reader_settings import setting_fields

# Per setting: a value other than its default (all valid together), and the
# convert flags that give it.
NON_DEFAULT = {
    "incorrect_spans_key": ("rejected", ["--incorrect-spans-key", "rejected"]),
    "alignment": ("expand", ["--alignment", "expand"]),
    "labels": (("LOC", "PER"), ["--labels", "LOC,PER"]),
    "max_length": (40, ["--max-length", "40"]),
    "long_texts": ("skip", ["--long-texts", "skip"]),
    "strict": (True, ["--strict"]),
    "use_tokens": (False, ["--ignore-tokens"]),
    "offsets": ("utf16", ["--offsets", "utf16"]),
    "propagate_accepts": (True, ["--propagate-accepts"]),
    "propagate_min_rate": (0.1, ["--propagate-min-rate", "0.1"]),
    "propagate_max_nested": (0.5, ["--propagate-max-nested", "0.5"]),
    "propagate_max_rejected": (0.2, ["--propagate-max-rejected", "0.2"]),
    "propagate_unpushed": (True, ["--propagate-unpushed"]),
    "weak_spans_key": ("weak", ["--weak-spans-key", "weak"]),
}
VALUES = {name: value for name, (value, _) in NON_DEFAULT.items()}
EXPECTED = ReaderSettings(**VALUES)
RECORD = {"text": "Anna lives in Paris .", "spans": [{"start": 14, "end": 19, "label": "LOC"}], "answer": "accept"}


def test_every_setting_has_a_doc_a_default_and_a_case_here():
    names = [f.name for f in setting_fields()]
    assert sorted(NON_DEFAULT) == sorted(names)
    defaults = ReaderSettings()
    for f in setting_fields():
        assert f.metadata["doc"].strip() and f"{f.name} (" in ReaderSettings.__doc__
        assert getattr(EXPECTED, f.name) != getattr(defaults, f.name), f.name


def test_the_registered_reader_takes_every_setting_with_its_default():
    params = inspect.signature(registry.readers.get(READER_NAME)).parameters
    corpus_only = {"path", "complete_path", "limit"}
    defaults = {f.name: f.default for f in setting_fields()}
    assert {name: p.default for name, p in params.items() if name not in corpus_only} == defaults
    # ... and hands each one on.
    assert registry.readers.get(READER_NAME)(**VALUES).settings == EXPECTED


def test_every_setting_reaches_the_reader(monkeypatch):
    nlp = spacy.blank("en")
    assert TeachReader(nlp, EXPECTED).settings == TeachReader(nlp, **VALUES).settings == EXPECTED
    assert TeachReader(nlp, ReaderSettings(), **VALUES).settings == EXPECTED
    assert read_teach_data(nlp, None, None, **VALUES)[1].settings == EXPECTED
    assert read_teach_data(nlp, None, None, EXPECTED)[1].settings == EXPECTED
    seen = []

    class Spy(TeachReader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.settings)

    monkeypatch.setattr(sys.modules[records_to_examples.__module__], "TeachReader", Spy)
    records_to_examples(nlp, [], **VALUES)
    records_to_examples(nlp, [], EXPECTED)
    assert seen == [EXPECTED, EXPECTED]


def test_every_setting_is_a_convert_flag(tmp_path):
    path, report = tmp_path / "in.jsonl", tmp_path / "report.json"
    path.write_text(json.dumps(RECORD) + "\n", encoding="utf8")
    flags = [flag for _, given in NON_DEFAULT.values() for flag in given]
    assert cli(["convert", str(path), str(tmp_path / "out.spacy"), *flags, "--report", str(report)]) == 0
    assert json.loads(report.read_text())["settings"] == EXPECTED.to_dict()
    assert cli(["convert", str(path), str(tmp_path / "out.spacy"), "--report", str(report)]) == 0
    assert json.loads(report.read_text())["settings"] == ReaderSettings().to_dict()


def test_settings_are_frozen_and_checked():
    settings = ReaderSettings(labels=["LOC"])
    assert settings.labels == ("LOC",) and hash(settings) == hash(ReaderSettings(labels=("LOC",)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.alignment = "expand"
    with pytest.raises(ValueError, match="labels must be a list"):
        ReaderSettings(labels="LOC")
    with pytest.raises(ValueError, match="max_length must be 0"):
        ReaderSettings(max_length=-1)
    with pytest.raises(TypeError):
        ReaderSettings(alignmnet="expand")
