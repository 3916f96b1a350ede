#!/usr/bin/env python3
"""Check that a packaged pipeline wheel installs into a separate virtual
environment and predicts exactly what the trained pipeline predicts.

The new venv does not see the base interpreter's packages. It sees the
distributions of the environment this script runs in (a venv, a conda env or
a system Python) through one `.pth` file that adds that environment's
site-packages folders after its own, so spaCy, torch and spacy-binary-ner are
found there and nothing is downloaded. The wheel is installed into the new
venv with `pip install --no-index` (its requirements must be met already),
`spacy.load` of the package name runs inside it, and its entities and span
probabilities on the texts of a JSONL file are compared with those of the
trained pipeline loaded here.

    python scripts/check_package.py packages/en_binary_ner_sample-0.1.0/dist/*.whl \\
        training/model-best assets/en_gold_eval.jsonl
"""

import argparse
import json
import site
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path
from typing import List

PREDICT = r"""
import json, sys
import spacy
nlp = spacy.load(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf8"))
out = []
for doc in nlp.pipe(texts):
    group = doc.spans.get("binary_ner_scores", [])
    scores = [float(p) for p in group.attrs["scores"]] if len(group) else []
    out.append({"ents": [[e.start_char, e.end_char, e.label_] for e in doc.ents],
                "spans": [[s.start_char, s.end_char, s.label_, p] for s, p in zip(group, scores)]})
json.dump({"predictions": out}, open(sys.argv[3], "w", encoding="utf8"))
"""
PTH_NAME = "_check_package_parent_env.pth"


def parent_site_dirs() -> List[str]:
    """The folders holding this environment's installed distributions, in the
    order this interpreter searches them."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        dirs.append(site.getusersitepackages())
    purelib = sysconfig.get_paths()["purelib"]
    if purelib not in dirs:
        dirs.insert(0, purelib)
    return [d for d in dict.fromkeys(dirs) if Path(d).is_dir()]


def make_env(env_dir: Path) -> str:
    """Create a venv at `env_dir` that sees its own site-packages first and this
    environment's after it, never the base interpreter's. Returns its Python.

    `site.addsitedir` (not a bare path line) so that the `.pth` files of this
    environment run too: editable installs are found through them.
    """
    venv.EnvBuilder(system_site_packages=False, with_pip=False, clear=True).create(env_dir)
    python = str(env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python"))
    own_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lines = [f"import site; site.addsitedir({d!r})" for d in parent_site_dirs()]
    (Path(own_site) / PTH_NAME).write_text("\n".join(lines) + "\n", encoding="utf8")
    return python


def predict(python: str, model: str, texts_path: Path, out_path: Path) -> dict:
    subprocess.run([python, "-c", PREDICT, model, str(texts_path), str(out_path)], check=True)
    return json.loads(out_path.read_text(encoding="utf8"))


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheel", type=Path, help="the package wheel (spacy package --build wheel)")
    p.add_argument("model", help="the trained pipeline folder the package was made from")
    p.add_argument("texts", type=Path, help="JSONL whose `text` fields are predicted")
    p.add_argument("--venv", type=Path, default=None, help="venv folder (default: a temporary one)")
    p.add_argument("--report", type=Path, default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    if not args.wheel.exists():
        print(f"error: no wheel at {args.wheel}: run `spacy project run package` first", file=sys.stderr)
        return 1
    # spacy package names the wheel {lang}_{name}-{version}-...; the importable package is the part before "-".
    package = args.wheel.name.split("-")[0]
    texts = [json.loads(line)["text"] for line in args.texts.read_text(encoding="utf8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env_dir = args.venv or tmp_path / "venv"
        python = make_env(env_dir)
        # The new venv runs this environment's pip (found through the .pth file),
        # which installs into the new venv's own site-packages.
        install = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-warn-conflicts", str(args.wheel)],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            print(install.stdout + install.stderr, file=sys.stderr)
            print(
                f"error: `pip install --no-index {args.wheel.name}` failed in the new venv {env_dir}; its requirements "
                f"must be installed in this environment ({sys.prefix}), which the new venv sees",
                file=sys.stderr,
            )
            return 1
        where = subprocess.run(
            [python, "-c", f"import {package}; print({package}.__file__)"], check=True, capture_output=True, text=True
        ).stdout.strip()
        if not Path(where).resolve().is_relative_to(Path(env_dir).resolve()):
            print(f"error: {package} was imported from {where}, not from the new venv", file=sys.stderr)
            return 1
        texts_path = tmp_path / "texts.json"
        texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf8")
        installed = predict(python, package, texts_path, tmp_path / "installed.json")["predictions"]
        trained = predict(sys.executable, args.model, texts_path, tmp_path / "trained.json")["predictions"]
    same_ents = sum(a["ents"] == b["ents"] for a, b in zip(installed, trained))
    same_spans = sum(a["spans"] == b["spans"] for a, b in zip(installed, trained))
    n_ents = sum(len(a["ents"]) for a in trained)
    print(f"Installed {args.wheel.name} into a separate venv; {package} imported from {where}")
    print(
        f"spacy.load('{package}') vs the trained pipeline on {len(texts)} texts ({n_ents} entities): "
        f"identical entities in {same_ents}/{len(texts)}, identical span probabilities in {same_spans}/{len(texts)}"
    )
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "wheel": args.wheel.name,
            "package": package,
            "model": args.model,
            "texts": len(texts),
            "entities": n_ents,
            "identical_entities": same_ents,
            "identical_span_probabilities": same_spans,
        }
        args.report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    return 0 if same_ents == same_spans == len(texts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
