"""What the commands share about their arguments: a wrong one is one line
naming it and what would work, exit status 2, and nothing written.

Every check here runs before a command reads or writes anything, so a
command that fails on an argument leaves the disk as it was.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional, Union

PathArg = Union[str, Path]


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line on stderr (no
    usage block) and exit with status 2."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: error: MESSAGE` and exit 2.

        message (str): What is wrong, naming the argument.
        """
        self.exit(2, f"{self.prog}: error: {message}\n")


def input_error(path: PathArg, argument: str) -> Optional[str]:
    """What is wrong with an input file or folder, or None.

    path (PathArg): The path given.
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None if the path exists.
    """
    if not os.path.exists(path):
        return f"argument {argument}: no such file or folder: '{path}'"
    return None


def output_file_error(path: PathArg, argument: str) -> Optional[str]:
    """What keeps a command from writing a file here, or None: the path is a
    folder, or the folder it would go into cannot be made or written.

    path (PathArg): The file to write.
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None if the file can be written.
    """
    path = Path(path)
    if path.is_dir():
        return f"argument {argument}: '{path}' is a folder: give a file name"
    return _folder_error(path.parent, argument, f"'{path}'")


def output_folder_error(path: PathArg, argument: str) -> Optional[str]:
    """What keeps a command from writing into this folder, or None.

    path (PathArg): The folder to write into (made if missing).
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None if the folder can be used.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"argument {argument}: '{path}' is a file, not a folder: give a folder (it is made if missing)"
    return _folder_error(path, argument, f"'{path}'")


def _folder_error(folder: Path, argument: str, what: str) -> Optional[str]:
    """Whether `folder` exists as a writable folder, or can be made: its
    nearest existing ancestor is a writable folder."""
    existing = folder if str(folder) else Path(".")
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"argument {argument}: cannot write {what}: '{existing}' is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"argument {argument}: cannot write {what}: the folder '{existing}' is not writable"
    return None


def language_error(lang: str, argument: str = "--lang") -> Optional[str]:
    """Whether spaCy has a language of this code, or None.

    lang (str): The code, e.g. "en".
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None if spaCy has it.
    """
    from spacy.util import get_lang_class

    try:
        get_lang_class(lang)
    except ImportError:
        return f"argument {argument}: spaCy has no language '{lang}': give a code spacy.blank knows, e.g. en, de, zh"
    return None


def pipeline_error(name: str, argument: str = "pipeline") -> Optional[str]:
    """Whether a pipeline argument names a pipeline folder (with a
    `config.cfg`) or an installed package, or None.

    name (str): The folder or package name.
    argument (str): The argument's name, for the message.
    RETURNS (Optional[str]): The message, or None if it can be loaded from.
    """
    from spacy.util import is_package

    path = Path(name)
    if path.is_dir():
        if not (path / "config.cfg").is_file():
            return f"argument {argument}: '{name}' has no config.cfg: give a saved pipeline's folder"
        return None
    if path.exists():
        return f"argument {argument}: '{name}' is a file: give a pipeline folder (nlp.to_disk) or a package name"
    if not is_package(name):
        return f"argument {argument}: no pipeline folder or installed package '{name}'"
    return None


def fail(parser: argparse.ArgumentParser, message: Optional[str]) -> None:
    """Exit through `parser.error` if there is a message.

    parser (argparse.ArgumentParser): The command's parser.
    message (Optional[str]): An error from the checks above, or None.
    """
    if message is not None:
        parser.error(message)


def print_error(prog: str, message: str) -> None:
    """One line on stderr for an error found while running.

    prog (str): The command, e.g. "python -m spacy_binary_ner convert".
    message (str): What went wrong.
    """
    print(f"{prog}: error: {message}", file=sys.stderr)


__all__ = [
    "ArgumentParser",
    "fail",
    "input_error",
    "language_error",
    "output_file_error",
    "output_folder_error",
    "pipeline_error",
    "print_error",
]
