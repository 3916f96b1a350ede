"""The pipe's settings are written once, in `PipeSettings`: the factory's
signature, its `default_config` and the pipe's `cfg` must name the same ones."""

import dataclasses
import inspect
import itertools
import json
from pathlib import Path
from typing import get_type_hints

import pytest
import spacy
from spacy.language import Language

from spacy_binary_ner.pipe_settings import PipeSettings
from spacy_binary_ner.pipeline import CONFIG_SETTINGS, BinaryNER, make_binary_ner

from .util import SMALL_MODEL

NOT_SETTINGS = {"nlp", "name", "model", "scorer"}
NAMES = PipeSettings.names()


def test_factory_signature_names_every_setting_with_its_type():
    signature = inspect.signature(make_binary_ner)
    assert [name for name in signature.parameters if name not in NOT_SETTINGS] == list(NAMES)
    factory_types = get_type_hints(make_binary_ner)
    setting_types = get_type_hints(PipeSettings)
    assert {name: factory_types[name] for name in NAMES} == setting_types


def test_default_config_holds_every_setting_and_its_default():
    defaults = Language.get_factory_meta("binary_ner").default_config
    assert [key for key in defaults if key not in NOT_SETTINGS] == list(NAMES)
    assert {name: defaults[name] for name in NAMES} == PipeSettings().to_dict()


def test_cfg_saves_every_setting():
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL, "threshold": 0.3})
    assert set(pipe.cfg) == {"labels", CONFIG_SETTINGS, *NAMES}
    assert pipe.cfg[CONFIG_SETTINGS] == dataclasses.replace(PipeSettings(), threshold=0.3).to_dict()
    assert {name: pipe.cfg[name] for name in NAMES} == pipe.cfg[CONFIG_SETTINGS]
    json.dumps(pipe.cfg)  # saved as JSON by `to_disk`


def test_settings_are_frozen_and_take_overrides():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PipeSettings().threshold = 0.2  # type: ignore[misc]
    nlp = spacy.blank("en")
    model = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL}).model
    pipe = BinaryNER(nlp.vocab, model, settings=PipeSettings(threshold=0.4), unknown_weight=0.02)
    assert (pipe.cfg["threshold"], pipe.cfg["unknown_weight"]) == (0.4, 0.02)
    with pytest.raises(TypeError):
        BinaryNER(nlp.vocab, model, no_such_setting=1)


def test_pick_keeps_only_settings():
    assert PipeSettings.pick({"threshold": 0.7, "model": object()}) == PipeSettings(threshold=0.7)


def _documented_settings() -> dict:
    """The rows of the settings table (README or docs): name -> default."""
    root = Path(__file__).parent.parent
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        lines = path.read_text(encoding="utf8").splitlines()
        heads = [i for i, line in enumerate(lines) if line.startswith("| `binary_ner` setting |")]
        if heads:
            rows = itertools.takewhile(lambda line: line.startswith("|"), lines[heads[0] + 2 :])
            cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
            return {name.strip("`"): default.split(" (")[0] for name, default, *_ in cells}
    raise AssertionError("no table of the binary_ner settings in README.md or docs/")


def _as_documented(value) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return f"`{value}`" if isinstance(value, str) else f"{value:g}"


def test_the_settings_table_documents_every_setting_and_its_default():
    assert _documented_settings() == {name: _as_documented(value) for name, value in PipeSettings().to_dict().items()}
