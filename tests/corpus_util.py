"""A tiny trained pipeline and generated corpora for the corpus tests."""

import gzip
import json
import random
from pathlib import Path
from typing import List

import spacy
from spacy.util import fix_random_seed

from spacy_binary_ner.corpus.annotate import import_code
from spacy_binary_ner.data import records_to_examples

from .util import GOLD_RECORDS, SMALL_MODEL, TEACH_RECORDS

WORDS = ["Anna", "Berlin", "met", "Shaka", "Khan", "in", "London", "Paris", "lives", "is", "big", "rains", "It", "."]
# Lines a reader must count, with the reason it counts them under.
BAD_LINES = [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "not an object"),
    ('{"id": 7}', "missing key"),
    ('{"text": 5}', "bad field"),
    ('{"text": "   "}', "empty text"),
]


def train_pipeline(path: Path) -> Path:
    """Train the small binary_ner on the shared tiny records and save it."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    examples = records_to_examples(nlp, TEACH_RECORDS) + records_to_examples(nlp, GOLD_RECORDS, complete=True)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


def texts(n: int, seed: int = 0) -> List[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def write_corpus(folder: Path, n_files: int = 3, per_file: int = 40, bad: bool = True, gz: bool = True) -> List[str]:
    """JSONL files (the last gzipped if `gz`) of generated texts with ids, and
    with the BAD_LINES and a blank line in the first file if `bad`.
    RETURNS (List[str]): The good texts, in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    all_texts = texts(n_files * per_file)
    for k in range(n_files):
        lines = [
            json.dumps({"text": t, "id": k * per_file + i})
            for i, t in enumerate(all_texts[k * per_file : (k + 1) * per_file])
        ]
        if bad and k == 0:
            lines[3:3] = [line for line, _ in BAD_LINES] + [""]
        name = f"part{k}.jsonl" + (".gz" if gz and k == n_files - 1 else "")
        data = "\n".join(lines) + "\n"
        if name.endswith(".gz"):
            with gzip.open(folder / name, "wt", encoding="utf8") as f:
                f.write(data)
        else:
            (folder / name).write_text(data, encoding="utf8")
    return all_texts


def read_jsonl_folder(folder: Path, suffix: str = ".jsonl") -> List[dict]:
    records = []
    for path in sorted(folder.glob("*" + suffix)):
        with open(path, encoding="utf8") as f:
            records.extend(json.loads(line) for line in f)
    return records


# A component that stops the process the first time it meets the text "CRASH"
# while `marker` does not exist (it creates it first): a worker killed mid-run.
CRASH_CODE = """
import os
from spacy.language import Language

@Language.factory("crash_once", default_config={"marker": "", "hard": True})
def make_crash_once(nlp, name, marker, hard):
    def crash_once(doc):
        if doc.text == "CRASH" and not os.path.exists(marker):
            open(marker, "w").close()
            if hard:
                os._exit(1)
            raise KeyboardInterrupt("crash_once")
        return doc
    return crash_once
"""


def add_crash_pipe(pipeline: Path, out: Path, code: Path, marker: Path, hard: bool) -> Path:
    """A copy of the pipeline with `crash_once` first; `code` gets its source."""
    code.write_text(CRASH_CODE, encoding="utf8")
    import_code(str(code))
    nlp = spacy.load(pipeline)
    nlp.add_pipe("crash_once", first=True, config={"marker": str(marker), "hard": hard})
    nlp.to_disk(out)
    return out
