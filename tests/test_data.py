"""Reading teach answers and complete annotations into examples, and the account."""

import gzip
import json
import logging
import sys

import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import registry

from spacy_binary_ner.data import (
    REASONS,
    ReadStats,
    TeachDataError,
    TeachReader,
    iter_jsonl,
    read_teach_data,
    records_to_examples,
)
from spacy_binary_ner.records import RecordError, parse_record

from .util import GOLD_RECORDS, TEACH_RECORDS, zh_records


def rec(text, start, end, label, answer, **extra):
    return {"text": text, "spans": [{"start": start, "end": end, "label": label}], "answer": answer, **extra}


def write_lines(path, items):
    """Write one line per item: a dict as JSON, a str as it is (UTF-8), bytes as they are."""
    as_bytes = [
        x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x)).encode("utf8") for x in items
    ]
    path.write_bytes(b"".join(x + b"\n" for x in as_bytes))
    return path


def check_balance(stats: ReadStats) -> None:
    assert stats.used + sum(stats.skipped.values()) == stats.records
    assert stats.merged <= stats.used


def test_merge_by_sentence():
    nlp = spacy.blank("en")
    stats = ReadStats()
    examples = records_to_examples(nlp, TEACH_RECORDS, stats=stats)
    assert stats.records == len(TEACH_RECORDS)
    assert stats.examples == len(examples) == 5
    assert stats.skipped == {"ignore answer": 1}
    assert stats.used == 11 and stats.merged == 6  # 11 used records, in 5 sentences
    check_balance(stats)
    by_text = {eg.reference.text: eg.reference for eg in examples}
    london = by_text["I like London and Berlin ."]
    assert [(e.text, e.label_) for e in london.ents] == [("London", "LOC"), ("Berlin", "LOC")]
    assert [(s.text, s.label_) for s in london.spans["incorrect_spans"]] == [("I", "PERSON")]
    # Binary answers leave every other token unknown.
    assert [t.ent_iob_ for t in london] == ["", "", "B", "", "B", ""]


def test_complete_marks_the_rest_outside():
    nlp = spacy.blank("en")
    examples = records_to_examples(nlp, GOLD_RECORDS, complete=True)
    assert len(examples) == 3
    assert all(t.ent_iob_ in ("B", "I", "O") for eg in examples for t in eg.reference)
    assert not examples[2].reference.ents


def test_record_field_complete_overrides_the_file():
    nlp = spacy.blank("en")
    records = [
        rec("Anna is here", 0, 4, "PERSON", "accept", complete=True),
        rec("Bob is here", 0, 3, "PERSON", "accept"),
    ]
    first, second = records_to_examples(nlp, records)
    assert [t.ent_iob_ for t in first.reference] == ["B", "O", "O"]
    assert [t.ent_iob_ for t in second.reference] == ["B", "", ""]


def test_conflicting_answers_later_wins_and_is_counted():
    nlp = spacy.blank("en")
    stats = ReadStats()
    records = [rec("Paris is nice", 0, 5, "LOC", "reject"), rec("Paris is nice", 0, 5, "LOC", "accept")]
    (eg,) = records_to_examples(nlp, records, stats=stats)
    assert [e.text for e in eg.reference.ents] == ["Paris"]
    assert "incorrect_spans" not in eg.reference.spans
    assert stats.skipped == {"conflicting answers": 1} and stats.used == 1
    (eg,) = records_to_examples(nlp, records[::-1])
    assert not eg.reference.ents and len(eg.reference.spans["incorrect_spans"]) == 1


def test_conflict_after_alignment_later_wins():
    # Different characters, same tokens once expanded: still one answer per span.
    nlp = spacy.blank("en")
    stats = ReadStats()
    records = [rec("Paris is nice", 0, 5, "LOC", "accept"), rec("Paris is nice", 1, 5, "LOC", "reject")]
    (eg,) = records_to_examples(nlp, records, stats=stats, alignment="expand")
    assert not eg.reference.ents and [s.text for s in eg.reference.spans["incorrect_spans"]] == ["Paris"]
    assert stats.skipped == {"conflicting answers": 1}


def test_identical_complete_records_merge():
    # resume_zh has such sentences; without merging, Doc.set_ents raises E1010.
    nlp = spacy.blank("en")
    stats = ReadStats()
    gold = GOLD_RECORDS[0]
    examples = records_to_examples(nlp, [gold, dict(gold)], complete=True, stats=stats)
    assert len(examples) == 1 and len(examples[0].reference.ents) == 3
    assert stats.skipped == {"duplicate answer": 1} and stats.spans["duplicate answer"] == 3


def test_later_complete_annotation_replaces_earlier_one():
    nlp = spacy.blank("en")
    stats = ReadStats()
    first = rec("Anna met Bob", 0, 4, "PERSON", "accept")
    second = rec("Anna met Bob", 9, 12, "PERSON", "accept")
    (eg,) = records_to_examples(nlp, [first, second], complete=True, stats=stats)
    assert [e.text for e in eg.reference.ents] == ["Bob"]
    assert [t.ent_iob_ for t in eg.reference] == ["O", "O", "B"]
    assert stats.skipped == {"conflicting answers": 1}


def test_complete_annotations_that_disagree_last_one_wins_whole():
    # conll2003_en's dev split gives one dateline three times: LOC, ORG, LOC for
    # its first token. The last annotation is used; the two before it were
    # replaced, not duplicates, although they share a span with it.
    nlp = spacy.blank("en")
    stats = ReadStats()
    text = "BIRMINGHAM , England"

    def gold(label):
        spans = [{"start": 0, "end": 10, "label": label}, {"start": 13, "end": 20, "label": "LOC"}]
        return {"text": text, "spans": spans, "answer": "accept"}

    reader = TeachReader(nlp)
    reader.read_records([gold("LOC"), gold("ORG"), gold("LOC")], complete=True)
    (eg,) = reader.examples()
    stats = reader.total()
    assert [(e.text, e.label_) for e in eg.reference.ents] == [("BIRMINGHAM", "LOC"), ("England", "LOC")]
    assert reader.outcomes() == ["conflicting answers", "conflicting answers", None]
    assert stats.skipped == {"conflicting answers": 2} and stats.used == 1
    assert stats.where["conflicting answers"] == ["<records> record 1", "<records> record 2"]
    assert "duplicate answer" not in stats.where
    check_balance(stats)
    # The same annotation twice in a row stays a duplicate.
    reader = TeachReader(nlp)
    reader.read_records([gold("ORG"), gold("LOC"), gold("LOC")], complete=True)
    (eg,) = reader.examples()
    assert reader.outcomes() == ["conflicting answers", None, "duplicate answer"]


def test_teach_and_complete_files_merge_by_text(tmp_path):
    # Teach exports carry an _input_hash, gold files often do not: same text, same example.
    teach = write_lines(tmp_path / "teach.jsonl", [rec("Anna met Bob", 5, 8, "PERSON", "reject", _input_hash=7)])
    gold = write_lines(tmp_path / "gold.jsonl", [rec("Anna met Bob", 0, 4, "PERSON", "accept")])
    examples, reader = read_teach_data(spacy.blank("en"), teach, gold)
    (eg,) = examples
    assert [e.text for e in eg.reference.ents] == ["Anna"]
    assert [s.text for s in eg.reference.spans["incorrect_spans"]] == ["met"]
    assert [t.ent_iob_ for t in eg.reference] == ["B", "O", "O"]
    assert [s.used for s in reader.stats] == [1, 1] and reader.total().merged == 1


def test_rejected_entity_of_complete_annotation_becomes_unknown():
    nlp = spacy.blank("en")
    records = [
        rec("Anna met Bob", 0, 4, "PERSON", "accept", complete=True),
        rec("Anna met Bob", 0, 4, "PERSON", "reject"),
    ]
    (eg,) = records_to_examples(nlp, records)
    assert not eg.reference.ents
    assert [t.ent_iob_ for t in eg.reference] == ["", "O", "O"]


# One tiny input per reason: (lines, complete, settings, reason).
BAD_ANSWER = rec("Paris is nice", 0, 5, "LOC", "maybe")
REASON_CASES = {
    "malformed JSON": (['{"text": "Paris is nice", "spans": ['], False, {}),
    "not an object": (["[1, 2, 3]"], False, {}),
    "missing key": ([{"spans": [], "answer": "accept"}], False, {}),
    "bad field": ([rec("Paris is nice", "0", 5, "LOC", "accept")], False, {}),
    "bad tokens": (
        [
            rec(
                "ab",
                0,
                1,
                "X",
                "accept",
                tokens=[{"text": "a", "start": 0, "end": 1}, {"text": "a", "start": 0, "end": 1}],
            )
        ],
        False,
        {},
    ),
    "empty text": ([rec(" ", 0, 1, "LOC", "accept")], False, {}),
    "unknown answer": ([BAD_ANSWER], False, {}),
    "ignore answer": ([rec("Paris is nice", 0, 5, "LOC", "ignore")], False, {}),
    "no spans": ([{"text": "Paris is nice", "answer": "accept"}], False, {}),
    "rejected complete annotation": ([rec("Paris is nice", 0, 5, "LOC", "reject")], True, {}),
    "input hash clash": (
        [
            rec("Paris is nice", 0, 5, "LOC", "accept", _input_hash=1),
            rec("Rome is nice", 0, 4, "LOC", "accept", _input_hash=1),
        ],
        False,
        {},
    ),
    "duplicate answer": ([rec("Paris is nice", 0, 5, "LOC", "accept")] * 2, False, {}),
    "conflicting answers": (
        [rec("Paris is nice", 0, 5, "LOC", "accept"), rec("Paris is nice", 0, 5, "LOC", "reject")],
        False,
        {},
    ),
    "overlapping accept": (
        [rec("Big Paris", 0, 9, "LOC", "accept"), rec("Big Paris", 4, 9, "LOC", "accept")],
        False,
        {},
    ),
    "misaligned span": ([rec("Paris is nice", 0, 3, "LOC", "accept")], False, {}),
    "unknown label": ([rec("Paris is nice", 0, 5, "GPE", "accept")], False, {"labels": ["LOC"]}),
    "no tokens": ([rec("Paris is nice", 0, 5, "LOC", "accept")], False, {"nlp": "empty"}),
    "text too long": ([rec("Paris is nice", 0, 5, "LOC", "accept")], False, {"max_length": 2, "long_texts": "skip"}),
    "unreadable file": (
        [b"\xff\xfe" + json.dumps(rec("Paris is nice", 0, 5, "LOC", "accept")).encode("utf-16-le")],
        False,
        {},
    ),
    "not UTF-8": (
        [json.dumps(rec("Café is nice", 0, 4, "LOC", "accept"), ensure_ascii=False).encode("latin-1")],
        False,
        {},
    ),
    "lone surrogate": ([rec("Anna \ud83d lives", 0, 4, "PER", "accept")], False, {}),
    "tokens disagree with text": (
        [rec("Paris is big", 0, 6, "LOC", "accept", tokens=[{"text": "London", "start": 0, "end": 6}])],
        False,
        {},
    ),
    "span text mismatch": (
        [{"text": "😀高勇是男", "spans": [{"start": 2, "end": 4, "label": "PER", "text": "高勇"}], "answer": "accept"}],
        False,
        {},
    ),
    "span cut by split": ([rec("New York City is big", 0, 13, "LOC", "accept")], False, {"max_length": 2}),
    "tokens leave out text": (
        [rec("Paris is big", 0, 5, "LOC", "accept", tokens=[{"text": "Paris", "start": 0, "end": 5}])],
        False,
        {},
    ),
    "whitespace disagrees with text": (
        [rec("Paris", 0, 5, "LOC", "accept", tokens=[{"text": "Paris", "start": 0, "end": 5, "ws": True}])],
        False,
        {},
    ),
    "span disagrees with tokens": (
        [
            {
                "text": "Paris is big",
                "tokens": [
                    {"text": w, "start": s, "end": s + len(w)} for w, s in (("Paris", 0), ("is", 6), ("big", 9))
                ],
                "spans": [{"start": 0, "end": 5, "token_start": 2, "token_end": 2, "label": "LOC"}],
                "answer": "accept",
            }
        ],
        False,
        {},
    ),
    "non-finite number": (
        ['{"text": "Paris is big", "spans": [], "meta": {"score": NaN}, "answer": "accept"}'],
        False,
        {},
    ),
    # Raised even when not strict (see test_v2_label_in_a_record_names_the_record in test_spacy_compat.py).
    "spaCy v2 label": ([rec("Paris is nice", 0, 5, "!LOC", "accept")], False, {}),
}
ALWAYS_RAISED = {"spaCy v2 label"}


def test_every_reason_has_a_case():
    assert set(REASON_CASES) == set(REASONS)


def make_reader_nlp(settings):
    nlp = spacy.blank("en")
    if settings.pop("nlp", None) == "empty":
        nlp.tokenizer = lambda text: Doc(nlp.vocab, words=[])
    return nlp


@pytest.mark.parametrize("reason", sorted(REASON_CASES))
def test_reason_is_counted_with_its_place(tmp_path, reason):
    lines, complete, settings = REASON_CASES[reason]
    path = write_lines(tmp_path / "in.jsonl", lines)
    settings = dict(settings)
    reader = TeachReader(make_reader_nlp(settings), **settings)
    if reason in ALWAYS_RAISED:
        with pytest.raises(TeachDataError, match=rf"in.jsonl:1: {reason}.*Fix: "):
            reader.read_path(path, complete=complete)
        return
    reader.read_path(path, complete=complete)
    reader.examples()
    (stats,) = reader.stats
    assert stats.records == len(lines)
    assert stats.skipped == {reason: 1}
    check_balance(stats)
    line = len(lines) if reason not in ("conflicting answers", "overlapping accept") else 1
    assert f"{path}:{line}" in stats.where[reason]


@pytest.mark.parametrize("reason", sorted(REASON_CASES))
def test_strict_turns_a_skip_into_an_error(tmp_path, reason):
    lines, complete, settings = REASON_CASES[reason]
    path = write_lines(tmp_path / "in.jsonl", lines)
    settings = dict(settings)
    reader = TeachReader(make_reader_nlp(settings), strict=True, **settings)
    if reason == "ignore answer":
        reader.read_path(path, complete=complete)
        assert reader.examples() == []
        return
    with pytest.raises(TeachDataError, match=rf"in.jsonl:\d+: {reason}.*Fix: "):
        reader.read_path(path, complete=complete)
        reader.examples()


@pytest.mark.parametrize(
    "mode,start,end,expected,changed",
    [
        ("strict", 1, 5, None, None),
        ("expand", 1, 5, "Paris", "span expanded"),
        ("contract", 0, 7, "Paris", "span contracted"),
        ("contract", 1, 4, None, None),
        ("expand", 0, 5, "Paris", None),
    ],
)
def test_alignment_modes(mode, start, end, expected, changed):
    stats = ReadStats()
    examples = records_to_examples(
        spacy.blank("en"), [rec("Paris is nice", start, end, "LOC", "accept")], alignment=mode, stats=stats
    )
    if expected is None:
        assert examples == [] and stats.skipped == {"misaligned span": 1}
    else:
        assert [e.text for e in examples[0].reference.ents] == [expected]
        assert stats.changed == ({changed: 1} if changed else {})


def test_misaligned_entity_of_complete_annotation_stays_unknown():
    stats = ReadStats()
    (eg,) = records_to_examples(
        spacy.blank("en"),
        [{"text": "Anna met Bobby", "spans": [{"start": 9, "end": 11, "label": "PERSON"}]}],
        complete=True,
        stats=stats,
    )
    # "Bo" is not a token: its token is unknown, not "O"; the record is still used.
    assert [t.ent_iob_ for t in eg.reference] == ["O", "O", ""]
    assert stats.used == 1 and stats.spans["misaligned span"] == 1


def test_long_text_is_split_at_sentence_ends():
    text = "Anna lives here . Bob lives in Rome . Carl is in Paris now ."
    records = [
        rec(text, 18, 21, "PERSON", "accept"),
        rec(text, 31, 35, "LOC", "accept"),
        rec(text, 49, 54, "LOC", "reject"),
    ]
    stats = ReadStats()
    examples = records_to_examples(spacy.blank("en"), records, max_length=8, stats=stats)
    # Pieces end after "." and only pieces with answers become examples.
    assert [eg.reference.text for eg in examples] == ["Bob lives in Rome .", "Carl is in Paris now ."]
    assert [(e.text, e.label_) for e in examples[0].reference.ents] == [("Bob", "PERSON"), ("Rome", "LOC")]
    assert [s.text for s in examples[1].reference.spans["incorrect_spans"]] == ["Paris"]
    assert stats.changed == {"text split": 1, "split pieces": 3}
    assert stats.used == 3 and stats.examples == 2


def test_long_complete_text_split_keeps_every_piece():
    text = "Anna lives here . Bob lives in Rome ."
    stats = ReadStats()
    examples = records_to_examples(
        spacy.blank("en"), [rec(text, 0, 4, "PERSON", "accept")], complete=True, max_length=5, stats=stats
    )
    assert [eg.reference.text for eg in examples] == ["Anna lives here .", "Bob lives in Rome ."]
    assert [t.ent_iob_ for t in examples[1].reference] == ["O"] * 5
    assert stats.used == 1 and stats.examples == 2


def test_given_tokens_are_used_chinese():
    nlp = spacy.blank("zh")
    examples = records_to_examples(nlp, zh_records())
    assert [len(eg.predicted) for eg in examples] == [10, 15, 10]
    assert [(e.text, e.label_) for e in examples[0].reference.ents] == [("高勇", "NAME"), ("中国", "CONT")]
    assert [(s.text, s.label_) for s in examples[1].reference.spans["incorrect_spans"]] == [("中国", "NAME")]


def test_given_tokens_that_leave_out_whitespace_are_skipped():
    # Issue 44: the doc of these tokens would read "Anna met Bob", not the record's text.
    text = "Anna  met Bob"  # two spaces: the tokens do not cover them
    tokens = [
        {"text": "Anna", "start": 0, "end": 4},
        {"text": "met", "start": 6, "end": 9},
        {"text": "Bob", "start": 10, "end": 13},
    ]
    stats = ReadStats()
    assert (
        records_to_examples(spacy.blank("en"), [rec(text, 10, 13, "PERSON", "accept", tokens=tokens)], stats=stats)
        == []
    )
    assert stats.skipped == {"tokens leave out text": 1}
    # With a token of the second space (as spaCy's tokenizer makes it) the doc is the record's text.
    tokens.insert(1, {"text": " ", "start": 5, "end": 6})
    (eg,) = records_to_examples(spacy.blank("en"), [rec(text, 10, 13, "PERSON", "accept", tokens=tokens)])
    assert eg.reference.text == text and [e.text for e in eg.reference.ents] == ["Bob"]


def test_jsonl_plain_gz_and_directory(tmp_path):
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in TEACH_RECORDS[:3]) + "\n\n")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf8") as f:
        f.write(json.dumps(TEACH_RECORDS[3]) + "\n")
    assert len(list(iter_jsonl(tmp_path))) == 4
    assert len(list(iter_jsonl(tmp_path / "b.jsonl.gz"))) == 1
    (tmp_path / "c.jsonl").write_text('{"text": "x"}\n{broken\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: not valid JSON"):
        list(iter_jsonl(tmp_path / "c.jsonl"))
    with pytest.raises(FileNotFoundError):
        list(iter_jsonl(tmp_path / "missing.jsonl"))
    # The reader counts the broken line instead, per file.
    examples, reader = read_teach_data(spacy.blank("en"), tmp_path)
    assert reader.sources == [str(tmp_path / n) for n in ("a.jsonl", "b.jsonl.gz", "c.jsonl")]
    assert reader.stats[2].skipped == {"malformed JSON": 1, "missing key": 1}
    assert reader.stats[2].where["malformed JSON"] == [f"{tmp_path / 'c.jsonl'}:2"]


def test_registered_reader(tmp_path, caplog):
    teach, gold = tmp_path / "teach.jsonl", tmp_path / "gold.jsonl"
    teach.write_text("\n".join(json.dumps(r) for r in TEACH_RECORDS))
    gold.write_text("\n".join(json.dumps(r) for r in GOLD_RECORDS))
    nlp = spacy.blank("en")
    reader = registry.readers.get("spacy-binary-ner.TeachCorpus.v1")
    both = list(reader(path=str(teach), complete_path=str(gold))(nlp))
    assert len(both) == 5 + 3
    assert len(list(reader(path=str(teach), limit=2)(nlp))) == 2
    assert len(list(reader(path=[str(teach), str(teach)])(nlp))) == 5
    assert len(list(reader(path=str(teach), labels=["LOC"])(nlp))) == 3
    with pytest.raises(ValueError, match="needs a `path`"):
        list(reader()(nlp))
    # Skips other than ignore answers are logged as a warning, with a place.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rec("Paris is nice", 0, 3, "LOC", "accept")) + "\n")
    with caplog.at_level(logging.WARNING, logger="spacy"):
        assert list(reader(path=str(bad))(nlp)) == []
    assert f"1 of 1 records skipped (misaligned span 1); first places: misaligned span: {bad}:1" in caplog.text
    with pytest.raises(ValueError, match="alignment must be one of"):
        reader(path=str(teach), alignment="snap")


def test_documented_reader_config_resolves():
    import re
    from pathlib import Path

    from thinc.api import Config

    # The README points to docs/reader.md for the reader's config block.
    doc = (Path(__file__).resolve().parent.parent / "docs" / "reader.md").read_text(encoding="utf8")
    block = re.findall(r"```ini\n(.*?)```", doc, flags=re.S)[0]
    corpus = registry.resolve(Config().from_str(block))["corpora"]["train"]
    assert callable(corpus)


def _as_docs(examples):
    return [(eg.reference.to_json(), eg.predicted.to_json()) for eg in examples]


def test_parsed_records_are_used_as_they_are_never_parsed_again(monkeypatch):
    utf16 = {
        "text": "😀高勇是男",
        "spans": [{"start": 2, "end": 4, "label": "PER", "text": "高勇"}],
        "answer": "accept",
    }
    cases = [
        ("en", TEACH_RECORDS, False, "chars"),
        ("en", GOLD_RECORDS, True, "chars"),
        ("zh", zh_records(), False, "chars"),
    ]
    cases.append(("zh", [utf16], False, "utf16"))
    for lang, raw, complete, offsets in cases:
        nlp = spacy.blank(lang)
        parsed = []
        for value in raw:
            try:
                parsed.append(parse_record(value, complete, offsets))
            except RecordError:
                parsed.append(value)  # the ignore answer stays a dict, skipped as before
        from_dicts, dict_stats = ReadStats(), ReadStats()
        expected = records_to_examples(nlp, raw, complete=complete, offsets=offsets, stats=dict_stats)
        calls = []
        module = sys.modules[TeachReader.__module__]
        original = module.parse_record
        monkeypatch.setattr(module, "parse_record", lambda *a, **k: calls.append(a) or original(*a, **k))
        # A parsed record is in code points and carries its own `complete`:
        # the reader's settings for raw dicts do not apply to it.
        got = records_to_examples(nlp, parsed, stats=from_dicts)
        monkeypatch.setattr(module, "parse_record", original)
        assert len(calls) == sum(1 for value in parsed if isinstance(value, dict))
        assert _as_docs(got) == _as_docs(expected) and got
        assert from_dicts.to_dict() == dict_stats.to_dict()
    # Mixed in one source: dicts and records of one sentence still merge.
    mixed = [parse_record(TEACH_RECORDS[1]), TEACH_RECORDS[2], parse_record(TEACH_RECORDS[3])]
    (eg,) = records_to_examples(spacy.blank("en"), mixed)
    assert [e.text for e in eg.reference.ents] == ["London", "Berlin"]
    assert [s.text for s in eg.reference.spans["incorrect_spans"]] == ["I"]
