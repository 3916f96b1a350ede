#!/usr/bin/env python3
"""Print the shell command the README marks with `<!-- ci: NAME -->`: the lines
of the fenced block that follows the marker. `.ci/run` runs the README's
commands through this, so CI and the README cannot drift apart.

    python3 scripts/readme_command.py setup-command
"""

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_command(name: str, text: str) -> str:
    match = re.search(rf"<!-- ci: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, flags=re.S)
    if match is None:
        raise SystemExit(f"error: README.md has no block marked <!-- ci: {name} -->")
    return match.group(1).strip()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(readme_command(sys.argv[1], README.read_text(encoding="utf8")))
