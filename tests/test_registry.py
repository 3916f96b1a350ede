"""Every name the package registers resolves, through the entry points in
setup.cfg (so `spacy train` needs no --code) and through spaCy's registry."""

import configparser
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from spacy.language import Language
from spacy.util import registry

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def declared_entry_points():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    section = parser["options.entry_points"]
    for group, lines in section.items():
        for line in lines.strip().splitlines():
            name, target = (part.strip() for part in line.split("="))
            yield group, name, target


DECLARED = list(declared_entry_points())
REGISTRIES = {
    "spacy_architectures": registry.architectures,
    "spacy_readers": registry.readers,
    "spacy_callbacks": registry.callbacks,
    "spacy_scorers": registry.scorers,
}


@pytest.mark.parametrize("group,name,target", DECLARED, ids=[d[1] for d in DECLARED])
def test_entry_point_installed_and_resolves(group, name, target):
    installed = {ep.name: ep for ep in entry_points(group=group)}
    assert name in installed, f"{name} is not installed as a {group} entry point: reinstall the package"
    assert installed[name].value == target
    func = installed[name].load()
    if group == "spacy_factories":
        assert Language.has_factory(name)
        assert Language.get_factory_meta(name).factory == name
    else:
        assert REGISTRIES[group].get(name) is func


def test_every_registered_name_is_declared():
    declared = {name for _, name, _ in DECLARED}
    ours = {name for name in registry.architectures.get_all() if name.startswith("spacy-binary-ner.")}
    ours |= {name for name in registry.readers.get_all() if name.startswith("spacy-binary-ner.")}
    ours |= {name for name in registry.callbacks.get_all() if name.startswith("spacy-binary-ner.")}
    ours |= {name for name in registry.scorers.get_all() if name.startswith("spacy-binary-ner.")}
    assert ours <= declared
    assert "binary_ner" in declared
    assert "spacy-binary-ner.TorchSpanScorer.v1" in declared
    assert "spacy-binary-ner.dev_threshold.v1" in declared
    assert {
        "binary_textcat",
        "spacy-binary-ner.TextcatScorer.v1",
        "spacy-binary-ner.TorchTextcatScorer.v1",
        "spacy-binary-ner.TextcatCorpus.v1",
        "spacy-binary-ner.textcat_scorer.v1",
    } <= declared
    assert {
        "binary_rel",
        "spacy-binary-ner.RelScorer.v1",
        "spacy-binary-ner.TorchRelScorer.v1",
        "spacy-binary-ner.RelCorpus.v1",
        "spacy-binary-ner.rel_scorer.v1",
    } <= declared
