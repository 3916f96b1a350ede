"""One answer, parsed once: from the server's check to the loss."""

import pytest
import spacy
from spacy.language import Language

import spacy_binary_ner.pipeline as pipeline_module
import spacy_binary_ner.records as records_module
import spacy_binary_ner.teach_reader as reader_module
from spacy_binary_ner.loop import AnnotationLoop, initialize_pipeline
from spacy_binary_ner.server.answers import read_answer

from .util import SMALL_MODEL

TEXTS = ["We met Anna in Paris .", "Rome is far from Oslo .", "Anna lives in Rome ."]
ANSWER = {"text": TEXTS[0], "spans": [{"start": 15, "end": 20, "label": "LOC"}], "answer": "accept"}


def make_nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    return nlp


def count_parses(monkeypatch) -> list:
    """Every call of the record parser, wherever a module imported it from."""
    calls: list = []
    real = records_module.parse_record

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(records_module, "parse_record", counting)
    monkeypatch.setattr(reader_module, "parse_record", counting)
    return calls


def count_targets(monkeypatch) -> list:
    calls: list = []
    real = pipeline_module.build_targets

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "build_targets", counting)
    return calls


def test_an_answer_checked_by_the_server_is_parsed_once_up_to_build_targets(monkeypatch):
    nlp = make_nlp()
    loop = AnnotationLoop(nlp, optimizer=initialize_pipeline(nlp, ["LOC"], TEXTS), replay=0)
    parses, targets = count_parses(monkeypatch), count_targets(monkeypatch)
    checked = read_answer(dict(ANSWER, key="k1"), ["LOC"], nlp)
    loop.update([checked.record])
    assert targets, "the step did not reach build_targets"
    assert len(parses) == 1


def test_replayed_and_repeated_answers_are_not_parsed_again(monkeypatch):
    nlp = make_nlp()
    loop = AnnotationLoop(nlp, optimizer=initialize_pipeline(nlp, ["LOC"], TEXTS), replay=5, seed=0)
    parses = count_parses(monkeypatch)
    answers = [
        ANSWER,
        {"text": TEXTS[1], "spans": [{"start": 0, "end": 4, "label": "LOC"}], "answer": "accept"},
        {"text": TEXTS[2], "spans": [{"start": 0, "end": 4, "label": "LOC"}], "answer": "reject"},
    ]
    for answer in answers:
        loop.update([answer])
    # Each update replays the texts answered before; none of them is parsed again.
    assert len(parses) == len(answers)
    assert loop.answer_counts["accept"] == 2 and loop.answer_counts["reject"] == 1


def test_the_teach_server_hands_the_engine_the_record_it_parsed(monkeypatch, tmp_path):
    pytest.importorskip("starlette")
    from spacy_binary_ner.records import Record
    from spacy_binary_ner.server.teach import build_teacher

    from .server_util import teach_args, toy_records, write_config, write_jsonl

    write_config(tmp_path / "small.cfg")
    write_jsonl(tmp_path / "source.jsonl", [{"text": r["text"]} for r in toy_records(40)])
    teacher = build_teacher(teach_args(tmp_path))
    try:
        handed: list = []
        real_queue = teacher.engine.queue_answers
        monkeypatch.setattr(teacher.engine, "queue_answers", lambda items: handed.extend(items) or real_queue(items))
        (question,) = teacher.questions("a", 1)
        parses = count_parses(monkeypatch)
        teacher.answer("a", [teacher.validate(dict(question, answer="accept", key="k1"))])
        assert len(parses) == 1
        ((row_id, task_hash, record),) = handed
        assert isinstance(record, Record) and task_hash == question["_task_hash"]
        assert record.text == question["text"] and record.answer == "accept"
        assert teacher.wait_learned()
    finally:
        teacher.close()
