"""The README's Python quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_quickstart_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf8"), flags=re.S)
    assert blocks, "README has no Python quickstart"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    doc = namespace["doc"]
    group = doc.spans["binary_ner_scores"]
    assert len(group.attrs["scores"]) == len(group)
    assert capsys.readouterr().out


def test_ci_runs_the_readme_commands():
    """`.ci/run` takes both commands from the README's marked blocks, so a
    broken set-up command fails CI."""
    import importlib.util

    root = README.parent
    spec = importlib.util.spec_from_file_location("readme_command", root / "scripts" / "readme_command.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = README.read_text(encoding="utf8")
    setup = module.readme_command("setup-command", text)
    assert setup.startswith("pip install") and "spacy project run all" in setup
    assert module.readme_command("test-command", text).startswith("python -m pytest")
    ci = (root / ".ci" / "run").read_text(encoding="utf8")
    for name in ("setup-command", "test-command"):
        assert f"scripts/readme_command.py {name}" in ci


def test_readme_is_a_front_door():
    """A few screens: benchmark history and long how-tos live in bench/README.md and docs/."""
    assert len(README.read_bytes()) < 15_000
