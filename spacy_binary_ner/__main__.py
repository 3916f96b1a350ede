"""Command line: `python -m spacy_binary_ner COMMAND ...`.

Each command lives in its own module and exposes `main(argv) -> int`; the
module is imported only when its command runs, so a broken optional
dependency of one command cannot break the others.
"""

import importlib
import sys
from typing import Dict, List, Optional

COMMANDS: Dict[str, str] = {
    "annotate": "spacy_binary_ner.corpus.annotate_cli",
    "convert": "spacy_binary_ner.convert",
    "correct": "spacy_binary_ner.server.correct",
    "db-drop": "spacy_binary_ner.server.db_drop",
    "db-out": "spacy_binary_ner.server.db_out",
    "db-stats": "spacy_binary_ner.server.db_stats",
    "debug-data": "spacy_binary_ner.debug_data",
    "evaluate": "spacy_binary_ner.evaluate",
    "review": "spacy_binary_ner.server.review",
    "select": "spacy_binary_ner.corpus.select_cli",
    "silver-to-gold": "spacy_binary_ner.server.silver_to_gold",
    "simulate": "spacy_binary_ner.simulate",
    "teach": "spacy_binary_ner.server.teach",
}


def main(argv: Optional[List[str]] = None) -> int:
    """Run a command.

    argv (Optional[List[str]]): The command and its arguments (default:
        `sys.argv[1:]`).
    RETURNS (int): The exit status: 2 for an unknown command (one line on
        stderr), else the command's.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(sorted(COMMANDS))
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m spacy_binary_ner {{{names}}} ... (--help after a command for its options)")
        return 0
    if argv[0] not in COMMANDS:
        print(f"python -m spacy_binary_ner: error: unknown command {argv[0]!r}: use one of {names}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
