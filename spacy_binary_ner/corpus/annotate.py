"""Annotating a corpus: each text's entities and candidate span scores, one
output shard per input shard (see `sources`). The engines in `engines` run the
jobs defined here; a job is a picklable description that loads its pipeline
where it runs."""

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..data import ReadStats
from ..pipeline import find_binary_ner
from .sources import Shard, ShardOutput, SourceRecord

FORMATS = ("jsonl", "spacy")
# Fields of an input record that the output does not repeat: the tokens are
# the pipeline's own, and the rest the output writes itself.
DROPPED_FIELDS = ("tokens", "entities", "scores")


def import_code(path: Optional[str]) -> None:
    """Import a Python file of registered functions, as `spacy train --code` does."""
    if not path:
        return
    name = "spacy_binary_ner_user_code"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"Cannot import --code '{path}': not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def scores_key(nlp: Language) -> str:
    """The span group holding the candidate spans of the pipeline's `binary_ner`."""
    _, pipe = find_binary_ner(nlp)
    key = pipe.cfg["scores_key"]
    if not key:
        raise ValueError(
            "The binary_ner component has scores_key = null, so it writes no span scores: "
            "set scores_key (default binary_ner_scores) in its config."
        )
    return key


def doc_record(doc: Doc, record: SourceRecord, key: str, min_score: float) -> Dict[str, Any]:
    """The output record of an annotated text: its input fields (but tokens),
    `entities`, and `scores`, the candidate spans with probability >= min_score,
    most probable first. Offsets are characters; token offsets end-exclusive."""
    out = {k: v for k, v in record.fields.items() if k not in DROPPED_FIELDS}
    out["entities"] = [
        {"start": e.start_char, "end": e.end_char, "token_start": e.start, "token_end": e.end, "label": e.label_}
        for e in doc.ents
    ]
    scores = []
    if key in doc.spans:
        group = doc.spans[key]
        probs = group.attrs.get("scores", [])
        for span, p in zip(group, probs):
            p = float(p)
            if p < min_score:
                break
            scores.append({"start": span.start_char, "end": span.end_char, "label": span.label_, "score": round(p, 6)})
    out["scores"] = scores
    return out


class PipelineJob:
    """What a job needs of its pipeline: loaded once per process, on first use,
    and left out when the job is pickled to a worker (each loads its own)."""

    pipeline: str
    code: Optional[str]
    _nlp: Optional[Language]

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_nlp"] = None
        return state

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            import_code(self.code)
            self._nlp = spacy.load(self.pipeline)
            self._key = scores_key(self._nlp)
        return self._nlp


@dataclass
class AnnotateJob(PipelineJob):
    """Annotate shards with a pipeline.

    pipeline (str): Path (or package name) of the pipeline.
    output (str): The output folder.
    format (str): "jsonl" (records, see `doc_record`) or "spacy" (DocBins).
    min_score (float): Smallest span probability written in `scores`.
    max_length (int): Longest text annotated, in characters; longer ones are
        counted as "text too long".
    code (Optional[str]): A Python file to import before loading the pipeline.
    """

    pipeline: str
    output: str
    format: str = "jsonl"
    min_score: float = 0.1
    max_length: int = 100000
    code: Optional[str] = None
    _nlp: Optional[Language] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {self.format!r}")

    @property
    def shard_output(self) -> ShardOutput:
        return ShardOutput(self.output, "." + self.format)

    def settings(self) -> Dict[str, Any]:
        """What a rerun must repeat to complete this run."""
        return {
            "command": "annotate",
            "format": self.format,
            "min_score": self.min_score,
            "max_length": self.max_length,
        }

    def begin(self, shard: Shard) -> Any:
        self.nlp
        if self.format == "spacy":
            return (shard, DocBin(store_user_data=True), None)
        return (shard, None, self.shard_output.open_shard(shard))

    def add(self, state: Any, doc: Doc, record: SourceRecord) -> None:
        _, docbin, writer = state
        if docbin is not None:
            if self._key in doc.spans:
                # msgpack stores lists, not arrays
                doc.spans[self._key].attrs["scores"] = [float(p) for p in doc.spans[self._key].attrs["scores"]]
            doc.user_data["line"] = record.line
            docbin.add(doc)
        else:
            writer.write(doc_record(doc, record, self._key, self.min_score))

    def finish(self, state: Any, stats: ReadStats) -> Dict[str, Any]:
        shard, docbin, writer = state
        if docbin is not None:
            writer = self.shard_output.open_shard(shard)
            writer.write_bytes(docbin.to_bytes())
        writer.close(stats)
        return {"shard": shard.name, "records": stats.records, "used": stats.used}

    def abort(self, state: Any) -> None:
        if state[2] is not None:
            state[2].abort()

    def complete(self, shards: List[Shard]) -> ReadStats:
        """After every shard is done: the total account, written to account.json."""
        return self.shard_output.total(shards)


def shard_paths(folder: str) -> List[str]:
    """The output shards of a finished annotate run, sorted."""
    return sorted(
        os.path.join(folder, n) for n in os.listdir(folder) if n.endswith((".jsonl", ".spacy")) and ".tmp-" not in n
    )
