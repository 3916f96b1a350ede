"""scripts/check_package.py proves a wheel installs and predicts the same in a
separate venv that sees the running environment, never the base interpreter."""

import base64
import hashlib
import importlib.util
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import spacy

from spacy_binary_ner.data import records_to_examples

from .util import SMALL_MODEL, TEACH_RECORDS

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location("check_package", ROOT / "scripts" / "check_package.py")
check_package = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(check_package)

PROBE = "import json, sys, spacy, spacy_binary_ner; print(json.dumps({'path': sys.path, 'spacy': spacy.__file__}))"


def base_site_dirs() -> set:
    """The base interpreter's site-packages, which a venv with system site
    packages would see."""
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    return {str(Path(base["purelib"]).resolve()), str(Path(base["platlib"]).resolve())}


def test_new_env_sees_this_environment_and_not_the_base_interpreter(tmp_path):
    python = check_package.make_env(tmp_path / "venv")
    out = subprocess.run([python, "-c", PROBE], check=True, capture_output=True, text=True).stdout
    probe = json.loads(out)
    path = [str(Path(p).resolve()) for p in probe["path"] if p]
    this_env = {str(Path(d).resolve()) for d in check_package.parent_site_dirs()}
    # spaCy comes from this environment (the venv the tests run in) ...
    assert any(Path(probe["spacy"]).resolve().is_relative_to(d) for d in this_env)
    # ... and the base interpreter's packages are not seen unless they are this environment's own.
    assert not (base_site_dirs() - this_env) & set(path)
    # The new venv's own site-packages comes before this environment's.
    own = str((tmp_path / "venv").resolve())
    first_own = min(i for i, p in enumerate(path) if p.startswith(own))
    first_parent = min(i for i, p in enumerate(path) if p in this_env)
    assert first_own < first_parent


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(model_dir: Path, dest: Path, package: str, version: str) -> Path:
    """A wheel laid out as `spacy package` lays it out, written directly so the
    test needs no build backend."""
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf8"))
    data_dir = f"{package}/{meta['lang']}_{meta['name']}-{meta['version']}"
    files = {
        f"{package}/__init__.py": (
            "from spacy.util import load_model_from_init_py\n\n"
            "def load(**overrides):\n    return load_model_from_init_py(__file__, **overrides)\n"
        ).encode(),
        f"{package}/meta.json": (model_dir / "meta.json").read_bytes(),
    }
    for path in model_dir.rglob("*"):
        if path.is_file():
            files[f"{data_dir}/{path.relative_to(model_dir).as_posix()}"] = path.read_bytes()
    dist = f"{package}-{version}.dist-info"
    files[f"{dist}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\nRequires-Dist: spacy-binary-ner>=0.1.0\n"
    ).encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = dest / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    nlp.meta["name"] = "check_test"
    nlp.meta["version"] = "0.0.1"
    examples = records_to_examples(nlp, TEACH_RECORDS)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(tmp / "model")
    texts = tmp / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in TEACH_RECORDS), encoding="utf8")
    return tmp


def test_check_package_installs_the_wheel_and_compares_predictions(trained, tmp_path, capsys):
    wheel = make_wheel(trained / "model", tmp_path, "en_check_test", "0.0.1")
    report = tmp_path / "report.json"
    argv = [str(wheel), str(trained / "model"), str(trained / "texts.jsonl"), "--report", str(report)]
    assert check_package.main(argv) == 0
    result = json.loads(report.read_text(encoding="utf8"))
    assert result["identical_entities"] == result["identical_span_probabilities"] == len(TEACH_RECORDS)
    assert "imported from" in capsys.readouterr().out


def test_check_package_reports_a_different_model(trained, tmp_path):
    """The comparison can fail: a wheel made from other weights does not pass."""
    other = spacy.load(trained / "model")
    examples = records_to_examples(other, TEACH_RECORDS)
    optimizer = other.resume_training()
    for _ in range(10):
        other.update(examples, sgd=optimizer)
    other.to_disk(tmp_path / "other")
    wheel = make_wheel(tmp_path / "other", tmp_path, "en_check_test", "0.0.1")
    argv = [str(wheel), str(trained / "model"), str(trained / "texts.jsonl"), "--report", str(tmp_path / "r.json")]
    assert check_package.main(argv) == 1
    result = json.loads((tmp_path / "r.json").read_text(encoding="utf8"))
    assert result["identical_span_probabilities"] < len(TEACH_RECORDS)


def test_check_package_names_a_missing_wheel(tmp_path, capsys):
    argv = [str(tmp_path / "none.whl"), str(tmp_path), str(tmp_path / "t.jsonl")]
    assert check_package.main(argv) == 1
    assert "spacy project run package" in capsys.readouterr().err
