"""project.yml runs (training cut short), and the embedded sample is what
`assets/make_sample.py` writes and what the project expects."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.util import load_config
from weasel.cli.run import project_run
from weasel.util import load_project_config

ROOT = Path(__file__).resolve().parent.parent
# The workflow's commands that need no packaging; package and check-package
# build and install a wheel, which takes a minute: run them with
# SPACY_BINARY_NER_SLOW=1.
FAST_STEPS = ["convert", "convert-dev", "train", "evaluate"]
PACKAGE_STEPS = ["package", "check-package"]
RUN_SLOW = os.environ.get("SPACY_BINARY_NER_SLOW") == "1"


def copy_project(dest: Path, lang: str, n_lines: int = 0) -> Path:
    """The project's files a fresh clone has, without anything built; with
    `n_lines`, only the first lines of each sample file, to keep the test fast."""
    shutil.copy(ROOT / "project.yml", dest / "project.yml")
    shutil.copytree(ROOT / "configs", dest / "configs")
    shutil.copytree(ROOT / "scripts", dest / "scripts")
    (dest / "assets").mkdir()
    for path in (ROOT / "assets").glob(f"{lang}_*.jsonl"):
        lines = path.read_text(encoding="utf8").splitlines(keepends=True)
        (dest / "assets" / path.name).write_text("".join(lines[:n_lines] if n_lines else lines), encoding="utf8")
    return dest


def test_workflow_all_lists_the_commands():
    config = load_project_config(ROOT)
    assert config["workflows"]["all"] == FAST_STEPS + PACKAGE_STEPS
    commands = {cmd["name"]: cmd for cmd in config["commands"]}
    assert config["workflows"]["rel"] == ["rel-train"]
    for name in FAST_STEPS + PACKAGE_STEPS + config["workflows"]["textcat"] + config["workflows"]["rel"]:
        assert commands[name]["help"]
        # Every dependency is one path: confection joins adjacent variables.
        for dep in commands[name].get("deps", []):
            assert ", " not in dep, f"{name}: {dep}"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_embedded_sample_files_exist_for_every_var(lang):
    config = load_project_config(ROOT, overrides={"vars.lang": lang})
    for key in ("config", "train", "dev", "gold", "answers"):
        assert (ROOT / config["vars"][key]).exists(), config["vars"][key]


@pytest.mark.parametrize("lang", [pytest.param("en"), pytest.param("zh", marks=pytest.mark.slow)])
def test_project_runs_with_training_cut_short(tmp_path, monkeypatch, lang):
    if lang != "en" and not RUN_SLOW:
        pytest.skip("set SPACY_BINARY_NER_SLOW=1 to run the Chinese workflow too")
    project = copy_project(tmp_path, lang, n_lines=60)
    monkeypatch.setenv("SPACY_CONFIG_OVERRIDES", "--training.max_steps=20 --training.eval_frequency=20")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = {"vars.lang": lang}
    steps = FAST_STEPS + (PACKAGE_STEPS if RUN_SLOW else [])
    for step in steps:
        project_run(project, step, overrides=overrides, capture=True)

    vars_ = load_project_config(project, overrides=overrides)["vars"]
    account = json.loads((project / "corpus" / "train_account.json").read_text(encoding="utf8"))
    n_lines = sum(1 for line in open(project / vars_["train"], encoding="utf8") if line.strip())
    assert account["total"]["records"] == n_lines
    # Trained on the converted DocBins, for the overridden number of steps.
    config = load_config(project / "training" / "model-best" / "config.cfg")
    assert config["corpora"]["train"]["@readers"] == "spacy.Corpus.v1"
    assert config["paths"]["train"] == "corpus/train.spacy"
    assert config["training"]["max_steps"] == 20
    assert config["nlp"]["lang"] == lang

    report = json.loads((project / "metrics" / "evaluation.json").read_text(encoding="utf8"))
    answers = list(srsly.read_jsonl(project / vars_["answers"]))
    assert report["answers"]["questions"] == sum(len(a["spans"]) for a in answers if a["answer"] != "ignore")
    assert report["gold"]["micro"]["gold"] == sum(
        len(r["spans"]) for r in {r["text"]: r for r in srsly.read_jsonl(project / vars_["gold"])}.values()
    )
    assert set(report["labels"]) == {"en": {"PERSON", "LOC", "ORG"}, "zh": {"PER", "LOC", "ORG"}}[lang]
    assert (project / "metrics" / "evaluation.md").exists()
    if report.get("figure"):
        assert (project / "metrics" / "reliability.png").exists()
    assert (project / "project.lock").exists()
    if RUN_SLOW:
        check = json.loads((project / "metrics" / "package_check.json").read_text(encoding="utf8"))
        assert check["identical_entities"] == check["identical_span_probabilities"] == check["texts"] > 0


def test_textcat_workflow_trains_and_evaluates(tmp_path, monkeypatch):
    project = copy_project(tmp_path, "en")
    shutil.copytree(ROOT / "assets" / "textcat", project / "assets" / "textcat")
    config = load_project_config(project)
    assert config["workflows"]["textcat"] == ["textcat-train", "textcat-evaluate"]
    monkeypatch.setenv("SPACY_CONFIG_OVERRIDES", "--training.max_steps=10 --training.eval_frequency=5")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for step in config["workflows"]["textcat"]:
        project_run(project, step, capture=True)
    trained = load_config(project / "training-textcat" / "model-best" / "config.cfg")
    assert trained["training"]["max_steps"] == 10 and trained["nlp"]["pipeline"] == ["binary_textcat"]
    metrics = json.loads((project / "metrics" / "textcat.json").read_text(encoding="utf8"))
    assert 0.0 <= metrics["cats_score"] <= 1.0
    labels = {
        label for r in srsly.read_jsonl(project / "assets" / "textcat" / "en_gold_dev.jsonl") for label in r["cats"]
    }
    assert set(metrics["cats_f_per_type"]) == labels


def test_rel_workflow_trains(tmp_path, monkeypatch):
    project = copy_project(tmp_path, "en")
    shutil.copytree(ROOT / "assets" / "rel", project / "assets" / "rel")
    monkeypatch.setenv("SPACY_CONFIG_OVERRIDES", "--training.max_steps=4 --training.eval_frequency=2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    project_run(project, "rel-train", capture=True)
    trained = load_config(project / "training-rel" / "model-best" / "config.cfg")
    assert trained["nlp"]["pipeline"] == ["binary_ner", "binary_rel"] and trained["training"]["max_steps"] == 4


def test_sample_is_what_make_sample_writes(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "assets" / "make_sample.py"), str(tmp_path)], check=True, capture_output=True
    )
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in (ROOT / "assets").glob("*.jsonl"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (ROOT / "assets" / name).read_bytes(), name


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sample_has_unseen_entities_and_every_answer(lang):
    """The evaluation is not a copy of the training answers."""

    def entity_texts(path, answer=None):
        return {
            r["text"][s["start"] : s["end"]]
            for r in srsly.read_jsonl(path)
            for s in r["spans"]
            if answer is None or r.get("answer") == answer
        }

    trained = entity_texts(ROOT / "assets" / f"{lang}_teach.jsonl", "accept")
    gold = entity_texts(ROOT / "assets" / f"{lang}_gold_eval.jsonl")
    assert gold - trained and gold & trained
    answers = [r["answer"] for r in srsly.read_jsonl(ROOT / "assets" / f"{lang}_teach.jsonl")]
    assert {"accept", "reject", "ignore"} == set(answers)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sample_splits_share_no_text(lang):
    """No dev, evaluation or held-out answer text was trained on, nor is in another split."""
    texts = {
        name: {r["text"] for r in srsly.read_jsonl(ROOT / "assets" / f"{lang}_{name}.jsonl")}
        for name in ("teach", "gold_dev", "gold_eval", "answers_eval")
    }
    names = sorted(texts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not texts[a] & texts[b], (a, b, sorted(texts[a] & texts[b])[:3])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_patterns_load_into_an_entity_ruler_and_match_the_sample(lang):
    nlp = spacy.blank(lang)
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(list(srsly.read_jsonl(ROOT / "assets" / f"{lang}_patterns.jsonl")))
    records = list(srsly.read_jsonl(ROOT / "assets" / f"{lang}_gold_eval.jsonl"))
    found = correct = 0
    for record in records:
        doc = nlp(record["text"])
        gold = {(s["start"], s["end"], s["label"]) for s in record["spans"]}
        found += len(doc.ents)
        correct += sum((e.start_char, e.end_char, e.label_) in gold for e in doc.ents)
    # Cold-start patterns find some entities, mostly right (zh: 53 of 79, as names of places occur inside
    # organisation names in sentences never trained on).
    assert found > 20 and correct / found > 0.6


def _columns_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("columns_to_jsonl", ROOT / "scripts" / "columns_to_jsonl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "tags,spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 1, "PER"), (3, 3, "LOC")]),  # BIO
        (["I-PER", "I-PER", "B-PER", "O"], [(0, 1, "PER"), (2, 2, "PER")]),  # IOB1: B- only between same labels
        (["B-ORG", "M-ORG", "E-ORG", "S-LOC"], [(0, 2, "ORG"), (3, 3, "LOC")]),  # BMES
        (["B-ORG", "I-LOC", "E-LOC", "E-PER"], [(0, 0, "ORG"), (1, 2, "LOC"), (3, 3, "PER")]),  # label changes
        (["O", "O"], []),
    ],
)
def test_public_corpus_tags_decode(tags, spans):
    assert _columns_module().decode(tags) == spans


def test_public_corpus_columns_to_jsonl(tmp_path):
    source = tmp_path / "train.char.bmes"
    source.write_text("-DOCSTART- -X- O\n\n高 B-NAME\n勇 E-NAME\n： O\n\n中 B-CONT\n国 E-CONT\n", encoding="utf8")
    out = tmp_path / "gold.jsonl"
    assert _columns_module().main([str(source), str(out), "--join", ""]) == 0
    records = list(srsly.read_jsonl(out))
    assert [r["text"] for r in records] == ["高勇：", "中国"]
    assert records[0]["spans"] == [{"start": 0, "end": 2, "token_start": 0, "token_end": 1, "label": "NAME"}]
    # The project reads it as complete annotations.
    nlp = spacy.blank("zh")
    from spacy_binary_ner.data import records_to_examples

    examples = records_to_examples(nlp, records, complete=True)
    assert [(e.text, e.label_) for e in examples[0].reference.ents] == [("高勇", "NAME")]
    assert [t.ent_iob_ for t in examples[0].reference] == ["B", "I", "O"]
