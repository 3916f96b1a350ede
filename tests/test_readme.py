"""The README: its Python quickstart runs as written, CI runs its commands, it stays a front door, and its results
table is the one scripts/results_table.py prints from the result files."""

import re
from pathlib import Path

import pytest

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


def _results_table_module():
    import importlib.util

    path = README.parent / "scripts" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_table_is_generated_from_the_result_files():
    """The README's results table is what scripts/results_table.py prints from
    bench/results/<name>.json: no number is typed in by hand."""
    module = _results_table_module()
    assert module.readme_table(README.read_text(encoding="utf8")) == module.results_table()


def test_results_table_names_every_run(tmp_path):
    """Each row names its run, date and machine; "÷ full gold" is computed, and
    a gold run from another machine is refused."""
    import json

    module = _results_table_module()

    def write(name, machine, runs):
        meta = {"data": "d", "date": "2026-12-07", "machine": machine}
        (tmp_path / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": runs}))

    xeon = "2 cores, Intel(R) Xeon(R) Processor, Python 3.11.7, spaCy 3.8.18"
    write(
        "t",
        xeon,
        [{"system": "binary_ner", "seed": 0, "f": 0.8, "wps": 300}, {"system": "ner", "seed": 0, "f": 0.4, "wps": 200}],
    )
    write("g", xeon, [{"system": "binary_ner_gold", "seed": 0, "f": 0.9, "wps": 1}])
    write(
        "other",
        "2 cores, AMD EPYC, Python 3.11.7, spaCy 3.8.18",
        [{"system": "binary_ner_gold", "seed": 0, "f": 0.9, "wps": 1}],
    )
    row = module.table_row(module.Row("d teach-1x", "t", gold="g"), tmp_path)
    assert row == "| d teach-1x | **0.800** | 0.89 | 0.400 | 1.50 | `t` (÷ `g`): 2026-12-07, Intel Xeon |"
    with pytest.raises(ValueError, match="machine"):
        module.table_row(module.Row("d teach-1x", "t", gold="other"), tmp_path)
