"""Helpers of the teach-server tests: a tiny pipeline config and sources."""
import json
import random
from pathlib import Path
from typing import Dict, List

import spacy

from .util import SMALL_MODEL

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Oslo", "Prague", "Lisbon", "Dublin"]
PEOPLE = ["Anna", "Omar", "Lena", "Tom", "Mia", "Ravi", "Sara", "Ivan"]
TEMPLATES = ["{p} flew to {c} today .", "{p} said {c} is large .", "We met {p} in {c} .", "{c} welcomed {p} ."]


def write_config(path: Path, lang: str = "en") -> Path:
    """A `binary_ner` config with the tests' small span scorer."""
    nlp = spacy.blank(lang)
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    nlp.config.to_disk(path)
    return path


def toy_records(n: int, seed: int = 0) -> List[Dict]:
    """Distinct sentences with one city (LOC) each, gold spans included."""
    rng = random.Random(seed)
    records, seen = [], set()
    i = 0
    while len(records) < n:
        i += 1
        person, city = rng.choice(PEOPLE), rng.choice(CITIES)
        text = rng.choice(TEMPLATES).format(p=person, c=city) + f" ({i})"
        if text in seen:
            continue
        seen.add(text)
        start = text.index(city)
        records.append({"text": text, "spans": [{"start": start, "end": start + len(city), "label": "LOC"}]})
    return records


def write_jsonl(path: Path, records: List[Dict]) -> Path:
    with path.open("w", encoding="utf8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
