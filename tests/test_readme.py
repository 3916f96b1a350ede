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
