"""Bad input never crashes a read and never trains the wrong thing: unreadable
files and lines, text that is not UTF-8 or holds lone surrogates, offsets and
tokens that disagree with the text, bad tasks in the annotation loop, long
texts at inference and pickled payloads in a pipeline folder."""

import copy
import gzip
import json
import pickle
from pathlib import Path

import numpy
import pytest
import spacy
import srsly
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_binary_ner.convert import convert
from spacy_binary_ner.convert import main as convert_main
from spacy_binary_ner.data import REASONS, ReadStats, TeachDataError, TeachReader, read_teach_data, records_to_examples
from spacy_binary_ner.evaluate import read_answers
from spacy_binary_ner.loop import AnnotationLoop, initialize_pipeline
from spacy_binary_ner.models.grouping import windows
from spacy_binary_ner.models.span_scorer import torch_version
from spacy_binary_ner.records import iter_jsonl, parse_record

from .test_reader_properties import word_tokens
from .util import SMALL_MODEL


def rec(text, start, end, label="LOC", answer="accept", **extra):
    return {"text": text, "spans": [{"start": start, "end": end, "label": label}], "answer": answer, **extra}


GOOD = [rec("Paris is nice", 0, 5), rec("Rome is big", 0, 4), rec("Oslo is cold", 0, 4)]


def jsonl_bytes(records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf8") + b"\n" for r in records)


def read(path, **settings):
    reader = TeachReader(spacy.blank("en"), **settings)
    reader.read_path(path)
    examples = reader.examples()
    (stats,) = reader.stats
    assert stats.used + sum(stats.skipped.values()) == stats.records
    return examples, stats


# Files ---------------------------------------------------------------------


def damaged_gz(kind: str, path: Path) -> Path:
    data = gzip.compress(jsonl_bytes([rec(f"Paris is nice {i}", 0, 5) for i in range(1200)]))
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "corrupt":
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    else:  # not gzip at all
        data = jsonl_bytes(GOOD)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "not gzip"])
def test_damaged_gz_keeps_the_records_before_and_names_where_it_stopped(tmp_path, kind):
    path = damaged_gz(kind, tmp_path / "in.jsonl.gz")
    examples, stats = read(path)
    assert stats.skipped["unreadable file"] == 1
    (place,) = stats.where["unreadable file"]
    line = int(place.rsplit(":", 1)[1])
    assert place.startswith(f"{path}:")
    if kind == "not gzip":
        assert line == 1 and stats.records == 1
    elif kind == "truncated":  # every line before the damage was read and used
        assert stats.used == line - 1 and stats.records == line and line > 100
    else:  # deflate finds damage late: what it made of it is counted too; the CRC check stops it
        assert stats.used >= 500 and stats.records == line
    first = rf"in.jsonl.gz:{line}: unreadable file" if kind != "corrupt" else r"in.jsonl.gz:\d+: "
    with pytest.raises(TeachDataError, match=first):
        read(path, strict=True)
    with pytest.raises(ValueError, match=first):
        list(iter_jsonl(path))


def test_a_latin1_line_is_counted_and_the_rest_read(tmp_path):
    path = tmp_path / "in.jsonl"
    bad = json.dumps(rec("Café Paris", 5, 10), ensure_ascii=False).encode("latin-1")
    path.write_bytes(jsonl_bytes(GOOD[:1]) + bad + b"\n" + jsonl_bytes(GOOD[1:]))
    examples, stats = read(path)
    assert stats.skipped == {"not UTF-8": 1} and stats.used == 3
    assert stats.where["not UTF-8"] == [f"{path}:2"]


def test_a_utf16_file_is_one_unreadable_file(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(GOOD).decode("utf8").encode("utf-16"))  # with its BOM
    examples, stats = read(path)
    assert examples == [] and stats.records == 1 and stats.skipped == {"unreadable file": 1}
    assert "UTF-16" in REASONS["unreadable file"]


def test_a_utf8_bom_costs_nothing(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl_bytes(GOOD))
    examples, stats = read(path)
    assert stats.used == 3 and not stats.skipped and len(examples) == 3


def test_a_folder_with_no_jsonl_files_is_an_error_naming_it(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no records here")
    with pytest.raises(ValueError, match=rf"'{tmp_path}' holds no .jsonl"):
        read(tmp_path)
    corpus = registry.readers.get("spacy-binary-ner.TeachCorpus.v1")(path=str(tmp_path))
    with pytest.raises(ValueError, match="holds no .jsonl"):
        list(corpus(spacy.blank("en")))
    # Issue 44: a wrong argument, exit 2 (it was 1), and the reader's own error type.
    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(tmp_path), str(tmp_path / "out.spacy")])
    assert exit_info.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err
    with pytest.raises(TeachDataError, match="holds no .jsonl"):
        read(tmp_path)


# Text and offsets ----------------------------------------------------------

SURROGATE = rec("Anna \ud83d lives", 0, 4, "PER")


def test_a_lone_surrogate_is_a_named_reason_in_the_reader_and_corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(GOOD) + json.dumps(SURROGATE).encode("ascii") + b"\n")
    examples, stats = read(path)
    assert stats.skipped == {"lone surrogate": 1} and stats.used == 3
    corpus = registry.readers.get("spacy-binary-ner.TeachCorpus.v1")(path=str(path))
    assert len(list(corpus(spacy.blank("en")))) == 3
    # A properly paired escape is one character, and fine.
    assert parse_record(json.loads(json.dumps(rec("Anna \U0001f600 lives", 0, 4, "PER")))).text == "Anna 😀 lives"


UTF16_RECORD = {
    "text": "😀高勇是男",
    "spans": [{"start": 2, "end": 4, "label": "PER", "text": "高勇"}],
    "answer": "accept",
}


def test_span_text_that_disagrees_is_skipped_with_a_hint_for_utf16():
    stats = ReadStats()
    assert records_to_examples(spacy.blank("zh"), [UTF16_RECORD], stats=stats) == []
    assert stats.skipped == {"span text mismatch": 1}
    with pytest.raises(TeachDataError, match="look like UTF-16 code units"):
        records_to_examples(spacy.blank("zh"), [UTF16_RECORD], strict=True)


def test_utf16_offsets_are_read_when_asked():
    (eg,) = records_to_examples(spacy.blank("zh"), [UTF16_RECORD], offsets="utf16")
    assert [(e.text, e.label_) for e in eg.reference.ents] == [("高勇", "PER")]
    # Tokens' offsets are converted too.
    tokens = [
        {"text": c, "start": s, "end": s + len(c.encode("utf-16-le")) // 2}
        for c, s in zip("😀高勇是男", [0, 2, 3, 4, 5])
    ]
    (eg,) = records_to_examples(spacy.blank("zh"), [{**UTF16_RECORD, "tokens": tokens}], offsets="utf16")
    assert [e.text for e in eg.reference.ents] == ["高勇"]
    with pytest.raises(ValueError, match="offsets must be one of"):
        TeachReader(spacy.blank("zh"), offsets="bytes")


def test_tokens_that_disagree_with_the_text_are_skipped():
    london = [{"text": "London", "start": 0, "end": 6}, {"text": "is", "start": 7, "end": 9}]
    shifted = [{"text": "Paris", "start": 1, "end": 6}, {"text": "is", "start": 7, "end": 9}]
    stats = ReadStats()
    records = [rec("Paris is", 0, 5, tokens=london), rec("Paris is", 0, 5, tokens=shifted, _input_hash=2)]
    assert records_to_examples(spacy.blank("en"), records, stats=stats) == []
    assert stats.skipped == {"tokens disagree with text": 2}


def test_evaluate_counts_a_token_whose_start_is_a_list(tmp_path):
    path = tmp_path / "answers.jsonl"
    bad = rec("Paris is", 0, 5, tokens=[{"text": "Paris", "start": [0], "end": 5}])
    path.write_bytes(jsonl_bytes([bad, rec("Rome is", 0, 4)]) + "Anna ü\n".encode("latin-1"))
    docs, questions, account = read_answers(spacy.blank("en"), path)
    assert account["skipped"] == {"bad tokens": 1, "not UTF-8": 1} and len(questions) == 1


def test_converter_counts_bad_bytes_and_surrogates(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    latin = json.dumps(rec("Café Paris", 5, 10), ensure_ascii=False).encode("latin-1")
    path.write_bytes(jsonl_bytes(GOOD) + latin + b"\n" + json.dumps(SURROGATE).encode("ascii") + b"\n")
    report = convert(spacy.blank("en"), [str(path)], [], tmp_path / "out.spacy")
    assert report["docs"] == 3
    assert report["total"]["skipped_by_reason"] == {"lone surrogate": 1, "not UTF-8": 1}
    assert convert_main([str(path), str(tmp_path / "out.spacy"), "--strict"]) == 1
    assert f"{path}:4: not UTF-8" in capsys.readouterr().err


# The annotation loop -------------------------------------------------------


@pytest.fixture(scope="module")
def loop_nlp():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    optimizer = initialize_pipeline(nlp, ["LOC"], ["Rome is large ."])
    return nlp, optimizer


BAD_ANSWERS = {
    "spans null": ({"text": "Rome is big", "spans": None, "answer": "accept"}, "no spans"),
    "spans a dict": ({"text": "Rome is big", "spans": {"start": 0}, "answer": "accept"}, "bad field"),
    "span without start": (
        {"text": "Rome is big", "spans": [{"end": 4, "label": "LOC"}], "answer": "accept"},
        "bad field",
    ),
    "no text or hash": ({"spans": [{"start": 0, "end": 4, "label": "LOC"}], "answer": "accept"}, "missing key"),
    "lone surrogate": ({**SURROGATE, "spans": [{"start": 0, "end": 4, "label": "LOC"}]}, "lone surrogate"),
    "not a dict": ("accept", "not an object"),
    "bad answer": (rec("Rome is big", 0, 4, answer="maybe"), "unknown answer"),
    "tokens disagree": (
        rec("Rome is", 0, 4, tokens=[{"text": "Oslo", "start": 0, "end": 4}]),
        "tokens disagree with text",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_update_skips_and_counts_a_bad_answer_once(loop_nlp, case):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer, replay=3)
    bad, reason = BAD_ANSWERS[case]
    good = rec("Rome is big", 0, 4, _task_hash=12345)
    batch = [copy.deepcopy(good), copy.deepcopy(bad)]
    before = copy.deepcopy(batch)
    loss = loop.update(batch)
    assert loss > 0.0
    assert batch == before  # the caller's dicts, _task_hash included, unchanged
    assert loop.stats[f"answer skipped: {reason}"] == 1
    assert loop.n_answers == 2 and loop.answer_counts["accept"] == 1
    loop.update([rec("Oslo is cold", 0, 4)])
    assert loop.stats[f"answer skipped: {reason}"] == 1


def test_a_span_reason_is_counted_once_across_replays(loop_nlp):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer, replay=5)
    mixed = {"text": "Rome is big", "spans": [{"start": 0, "end": 4, "label": "GPE"}], "answer": "accept"}
    loop.update([mixed, rec("Oslo is cold", 0, 4)])
    for text in ("Paris is nice", "Bern is small", "Nice is warm"):
        loop.update([rec(text, 0, 4)])
    assert loop.stats["answer skipped: unknown label"] == 1


def test_a_step_that_raises_stores_nothing(loop_nlp, monkeypatch):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer)

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(loop.pipe, "update", fail)
    monkeypatch.setattr(loop.nlp, "update", fail)
    with pytest.raises(RuntimeError):
        loop.update([rec("Rome is big", 0, 4), rec("Oslo is cold", 0, 4)])
    assert loop._memory == {} and loop.n_answers == 0 and not loop.answer_counts


BAD_TASKS = {
    "meta a string": ({"text": "Rome is big", "meta": "x"}, "bad field"),
    "lone surrogate": ({"text": "Anna \ud83d lives"}, "lone surrogate"),
    "tokens disagree": (
        {"text": "Rome is", "tokens": [{"text": "Oslo", "start": 0, "end": 4}]},
        "tokens disagree with text",
    ),
    "no text": ({"meta": {}}, "missing key"),
    "not a dict": (["Rome"], "not an object"),
}


@pytest.mark.parametrize("case", sorted(BAD_TASKS))
def test_predict_skips_and_counts_a_bad_task(loop_nlp, case):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer)
    bad, reason = BAD_TASKS[case]
    stream = [{"text": "Rome is big", "meta": None}, copy.deepcopy(bad)]
    before = copy.deepcopy(stream)
    proposed = list(loop.predict(stream))
    assert proposed and all(task["text"] == "Rome is big" for _, task in proposed)
    assert loop.stats[f"task skipped: {reason}"] == 1
    assert stream == before


# Long texts and safe loading -----------------------------------------------


def test_windows_cover_every_span_start_once():
    for n in (1, 100, 2176, 2177, 5000, 10**5 + 3):
        ws = windows(n, 2048, 64)
        assert [c for _, _, c0, c1 in ws for c in range(c0, c1)] == list(range(n))
        assert all(a <= c0 and (c1 + 64 <= b or b == n) and (a == 0 or c0 - a == 64) for a, b, c0, c1 in ws)


def test_windowed_scores_equal_the_whole_doc_for_a_short_context_model():
    fix_random_seed(0)
    model_cfg = dict(SMALL_MODEL, lstm_depth=0)  # context: the CNN's 1 token each side
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("binary_ner", config={"model": model_cfg})
    pipe.add_label("LOC")
    nlp.initialize()
    model = pipe.model
    model.attrs["window"], model.attrs["margin"] = 50, 8
    docs = [nlp.make_doc(" ".join(f"w{i % 37}" for i in range(n))) for n in (3, 200, 67, 1000)]
    whole = model.layers[0].predict(docs)
    windowed = model.predict(docs)
    assert windowed.shape == whole.shape
    # Equal within the float noise of batching (one doc alone vs in a batch).
    alone = numpy.concatenate([model.layers[0].predict([doc]) for doc in docs])
    noise = float(numpy.abs(whole - alone).max())
    assert float(numpy.abs(whole - windowed).max()) <= max(2 * noise, 1e-4)
    doc = nlp(" ".join(["Paris"] * 3000))
    assert len(doc) == 3000


def test_torch_version_floor():
    assert torch_version("2.13.0+cpu") == (2, 13) and torch_version("2.6.0a0") == (2, 6)
    assert torch_version("2.5.1") < (2, 6)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pipeline_folder_carrying_a_pickled_payload_fails_to_load(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    pipe.add_label("LOC")
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipeline")
    assert spacy.load(tmp_path / "pipeline").pipe_names == ["binary_ner"]
    model_file = tmp_path / "pipeline" / "binary_ner" / "model"
    msg = srsly.msgpack_loads(model_file.read_bytes())
    marker = tmp_path / "code-ran"
    n_shims = 0
    for shims in msg["shims"]:
        for k, shim_bytes in enumerate(shims):
            shim = srsly.msgpack_loads(shim_bytes)
            shim["state"] = pickle.dumps(_Payload(marker))
            shims[k] = srsly.msgpack_dumps(shim)
            n_shims += 1
    assert n_shims >= 1
    model_file.write_bytes(srsly.msgpack_dumps(msg))
    with pytest.raises(Exception, match="[Ww]eights.only"):
        spacy.load(tmp_path / "pipeline")
    assert not marker.exists()


# Generated bad input -------------------------------------------------------

TEXTS = ["Paris is nice", "😀高勇是男", "Café in Rome", "高勇 是 中国 人"]


@st.composite
def bad_record_line(draw) -> bytes:
    """One line as a careless exporter writes it: UTF-16 offsets after an
    emoji, span `text` or `tokens` that disagree, lone surrogates, latin-1
    bytes, a BOM."""
    text = draw(st.sampled_from(TEXTS))
    if draw(st.integers(0, 5)) == 0:
        text = text[:2] + "\ud83d" + text[2:]
    n = len(text)
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start + 1, n))
    shift = draw(st.sampled_from([0, 0, 1]))  # UTF-16 style: one unit too far
    span = {"start": start + shift, "end": min(n, end + shift), "label": draw(st.sampled_from(["PER", "LOC"]))}
    if draw(st.booleans()):
        span["text"] = text[start:end]
    record = {
        "text": text,
        "spans": [span] if span["start"] < span["end"] else [],
        "answer": draw(st.sampled_from(["accept", "reject", "ignore", "maybe"])),
    }
    if draw(st.booleans()):
        words = text.split(" ")
        tokens, k = [], 0
        for word in words:
            tokens.append({"text": word, "start": k + draw(st.sampled_from([0, 0, 1])), "end": k + len(word)})
            k += len(word) + 1
        record["tokens"] = tokens
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf8", "utf8", "latin-1"]))
    try:
        data = line.encode(encoding)
    except UnicodeEncodeError:
        data = line.encode("utf8", "surrogatepass")  # a raw lone surrogate: not valid UTF-8 either
    return (b"\xef\xbb\xbf" if draw(st.integers(0, 9)) == 0 else b"") + data


FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(lines=st.lists(bad_record_line(), min_size=1, max_size=6), gz=st.booleans(), cut=st.integers(0, 40))
def test_generated_bad_files_are_read_and_converted_with_an_account(tmp_path, lines, gz, cut):
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / ("in.jsonl.gz" if gz else "in.jsonl")
    if gz:
        data = gzip.compress(data)
        data = data[: len(data) - cut]  # sometimes truncated
    path.write_bytes(data)
    examples, reader = read_teach_data(spacy.blank("zh"), path)
    total = reader.total()
    assert total.used + sum(total.skipped.values()) == total.records
    assert set(total.skipped) <= set(REASONS)
    report = convert(spacy.blank("zh"), [str(path)], [], tmp_path / "out.spacy")
    assert report["docs"] == len(examples)


@FAST
@given(lines=st.lists(bad_record_line(), min_size=1, max_size=4))
def test_generated_bad_tasks_never_raise_in_update_or_predict(loop_nlp, lines):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer, replay=2)
    tasks = []
    for line in lines:
        try:
            tasks.append(json.loads(line.decode("utf-8-sig")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            tasks.append(line.decode("latin-1"))  # what a server hands on for bytes it cannot read
    before = copy.deepcopy(tasks)
    for task in tasks:
        answered, skipped = sum(loop.answer_counts.values()), _skips(loop, "answer skipped: ")
        loop.update([task])
        # Counted as an answer, or skipped under a reason (or both: a span the step could not use).
        assert sum(loop.answer_counts.values()) - answered <= 1
        assert sum(loop.answer_counts.values()) - answered + _skips(loop, "answer skipped: ") - skipped >= 1
    assert loop.n_answers == len(tasks)
    list(loop.predict(tasks))
    assert loop.stats["texts scored"] + _skips(loop, "task skipped: ") == len(tasks)
    assert tasks == before


def _skips(loop, prefix):
    return sum(n for name, n in loop.stats.items() if name.startswith(prefix))


# Issue 44: fields that contradict each other, look-alike labels and hashes, non-finite numbers.


def with_tokens(text, start, end, tokens, **extra):
    return rec(text, start, end, tokens=tokens, **extra)


def _shifted(tokens, k, by):
    tokens = copy.deepcopy(tokens)
    tokens[k]["start"] += by
    tokens[k]["end"] += by
    return tokens


PARIS = "Paris is nice"
CONTRADICTIONS = {
    "token text": (
        with_tokens(PARIS, 0, 5, [{"text": "Rome", "start": 0, "end": 5}] + word_tokens(PARIS)[1:]),
        "tokens disagree with text",
    ),
    "token offsets": (with_tokens(PARIS, 0, 5, _shifted(word_tokens(PARIS), 2, -1)), "tokens disagree with text"),
    "a word in no token": (
        with_tokens(PARIS, 0, 5, [word_tokens(PARIS)[0], word_tokens(PARIS)[2]]),
        "tokens leave out text",
    ),
    "text after the last token": (with_tokens(PARIS, 0, 5, word_tokens(PARIS)[:2]), "tokens leave out text"),
    "text before the first token": (with_tokens(" " + PARIS, 1, 6, word_tokens(" " + PARIS)), "tokens leave out text"),
    "two spaces in no token": (
        with_tokens("Paris  is", 0, 5, [{"text": "Paris", "start": 0, "end": 5}, {"text": "is", "start": 7, "end": 9}]),
        "tokens leave out text",
    ),
    "a newline in no token": (
        with_tokens("Paris\nis", 0, 5, [{"text": "Paris", "start": 0, "end": 5}, {"text": "is", "start": 6, "end": 8}]),
        "tokens leave out text",
    ),
    "ws true where the text has no space": (
        with_tokens(
            "Paris.", 0, 5, [{"text": "Paris", "start": 0, "end": 5, "ws": True}, {"text": ".", "start": 5, "end": 6}]
        ),
        "whitespace disagrees with text",
    ),
    "ws false where the text has a space": (
        with_tokens(PARIS, 0, 5, [{**word_tokens(PARIS)[0], "ws": False}] + word_tokens(PARIS)[1:]),
        "whitespace disagrees with text",
    ),
    "ws not a boolean": (
        with_tokens(PARIS, 0, 5, [{**word_tokens(PARIS)[0], "ws": "yes"}] + word_tokens(PARIS)[1:]),
        "bad tokens",
    ),
    "span token_start": (
        {
            **with_tokens(PARIS, 0, 5, word_tokens(PARIS)),
            "spans": [{"start": 0, "end": 5, "label": "LOC", "token_start": 1, "token_end": 1}],
        },
        "span disagrees with tokens",
    ),
    "span token_end out of range": (
        {
            **with_tokens(PARIS, 0, 5, word_tokens(PARIS)),
            "spans": [{"start": 0, "end": 5, "label": "LOC", "token_start": 0, "token_end": 9}],
        },
        "span disagrees with tokens",
    ),
    "span text": (
        {**rec(PARIS, 0, 5), "spans": [{"start": 0, "end": 5, "label": "LOC", "text": "Rome"}]},
        "span text mismatch",
    ),
    "span outside the text": (rec(PARIS, 9, 20), "bad field"),
}


@pytest.mark.parametrize("case", sorted(CONTRADICTIONS))
def test_a_record_whose_fields_disagree_is_skipped_everywhere(tmp_path, capsys, case):
    bad, reason = CONTRADICTIONS[case]
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(GOOD + [bad]))
    examples, stats = read(path)
    assert stats.skipped == {reason: 1} and stats.used == 3 and stats.where[reason] == [f"{path}:4"]
    # Even when the reader would not use the record's tokens, and in memory.
    assert read(path, use_tokens=False)[1].skipped == {reason: 1}
    assert records_to_examples(spacy.blank("en"), GOOD + [bad], stats=ReadStats()) and parse_fails(bad, reason)
    assert convert_main([str(path), str(tmp_path / "out.spacy"), "--strict"]) == 1
    assert f"in.jsonl:4: {reason}" in capsys.readouterr().err
    assert not (tmp_path / "out.spacy").exists()


def parse_fails(record, reason):
    try:
        parse_record(record)
    except Exception as err:  # noqa: BLE001 - the reason is what is checked
        return getattr(err, "reason", None) == reason
    return False


def test_a_later_record_of_a_sentence_is_checked_too():
    good = with_tokens(PARIS, 0, 5, word_tokens(PARIS))
    bad = with_tokens(PARIS, 9, 13, [{**word_tokens(PARIS)[0], "ws": False}] + word_tokens(PARIS)[1:])
    stats = ReadStats()
    (eg,) = records_to_examples(spacy.blank("en"), [good, bad], stats=stats)
    assert stats.skipped == {"whitespace disagrees with text": 1}
    assert [e.text for e in eg.reference.ents] == ["Paris"]
    # The same tokens again are not parsed again, but an offset that only equals an integer is still no token.
    floats = with_tokens(PARIS, 9, 13, [{**word_tokens(PARIS)[0], "start": 0.0}] + word_tokens(PARIS)[1:])
    stats = ReadStats()
    records_to_examples(spacy.blank("en"), [good, floats, with_tokens(PARIS, 6, 8, word_tokens(PARIS))], stats=stats)
    assert stats.skipped == {"bad tokens": 1} and stats.used == 2


def test_tokens_that_spell_the_text_train_it_exactly():
    text = "Paris\n is  nice "
    tokens = [
        {"text": "Paris", "start": 0, "end": 5},
        {"text": "\n ", "start": 5, "end": 7},
        {"text": "is", "start": 7, "end": 9, "ws": True},
        {"text": " ", "start": 10, "end": 11},
        {"text": "nice", "start": 11, "end": 15},
    ]
    (eg,) = records_to_examples(spacy.blank("en"), [with_tokens(text, 11, 15, tokens)])
    assert eg.reference.text == eg.predicted.text == text
    assert [(e.start_char, e.end_char) for e in eg.reference.ents] == [(11, 15)]


@pytest.mark.parametrize("label", [" ", "\t", " LOC", "LOC "])
def test_a_whitespace_or_padded_label_is_a_bad_field(tmp_path, capsys, label):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(GOOD + [rec(PARIS, 0, 5, label)]))
    assert read(path)[1].skipped == {"bad field": 1}
    assert convert_main([str(path), str(tmp_path / "out.spacy"), "--strict"]) == 1
    assert "in.jsonl:4: bad field" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no whitespace at their ends"):
        TeachReader(spacy.blank("en"), labels=[label])


def test_labels_differing_only_in_case_are_a_warning_with_both_counts(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    records = [rec("Anna lives", 0, 4, "PER"), rec("Bob lives", 0, 3, "PER"), rec("Anna lives", 0, 4, "per")]
    path.write_bytes(jsonl_bytes(records))
    examples, stats = read(path)
    assert stats.labels == {"PER": 2, "per": 1}
    assert stats.labels_differing_in_case == [{"PER": 2, "per": 1}]
    assert stats.where["labels differ only in case"] == [f"{path}:3"]
    assert stats.skipped == {"overlapping accept": 1}  # two labels: the later accept wins, with the warning
    assert "labels differing only in case: PER 2 / per 1" in str(stats)
    with pytest.raises(TeachDataError, match=r"in.jsonl:3: labels differ only in case .*'per' here"):
        read(path, strict=True)
    report = convert(spacy.blank("en"), [str(path)], [], tmp_path / "out.spacy")
    assert report["total"]["labels_differing_in_case"] == [{"PER": 2, "per": 1}]
    assert convert_main([str(path), str(tmp_path / "o2.spacy")]) == 0
    assert "labels that differ only in case are two labels: PER 2, per 1" in capsys.readouterr().out
    assert convert_main([str(path), str(tmp_path / "o3.spacy"), "--strict"]) == 1


def test_the_loop_label_rule(loop_nlp):
    from spacy_binary_ner.loop import check_labels

    for labels in (["PER", "per"], ["LOC", " "], ["LOC", "LOC "], [""]):
        with pytest.raises(ValueError):
            check_labels(labels)
    check_labels(["PER", "LOC", "PER_1"])
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer)
    loop.update([rec("Rome is big", 0, 4, "loc"), rec("Oslo is cold", 0, 4)])
    assert loop.stats["answer skipped: unknown label"] == 1
    reader = TeachReader(nlp, labels=["LOC"], strict=True)
    reader.read_records([rec("Rome is big", 0, 4, "loc")])
    with pytest.raises(TeachDataError, match="labels are case-sensitive: 'LOC' is known"):
        reader.examples()


def test_hashes_of_one_integer_are_one_text(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes([rec(PARIS, 0, 5, _input_hash=7), rec(PARIS, 0, 5, answer="reject", _input_hash="7")]))
    examples, stats = read(path)
    assert len(examples) == 1 and stats.skipped == {"conflicting answers": 1}
    assert parse_record(rec(PARIS, 0, 5, _input_hash="007")).input_hash == 7
    assert parse_record(rec(PARIS, 0, 5, _input_hash="-3")).input_hash == -3
    assert parse_record(rec(PARIS, 0, 5, _input_hash="a7")).input_hash == "a7"
    for bad in (7.0, True, [7], {"h": 7}):
        assert parse_fails(rec(PARIS, 0, 5, _input_hash=bad), "bad field")
    # A different text under "7" is a clash with 7.
    stats = ReadStats()
    records_to_examples(
        spacy.blank("en"), [rec(PARIS, 0, 5, _input_hash=7), rec("Rome is big", 0, 4, _input_hash="7")], stats=stats
    )
    assert stats.skipped == {"input hash clash": 1}


PARIS_LINE = '"text": "Paris is nice", "answer": "accept", '
NON_FINITE_LINES = [
    "{" + PARIS_LINE + '"spans": [{"start": 0, "end": 5, "label": "LOC"}], "meta": {"score": NaN}}',
    "{" + PARIS_LINE + '"spans": [{"start": 0, "end": Infinity, "label": "LOC"}]}',
    "{" + PARIS_LINE + '"spans": [{"start": 0, "end": 5, "label": "LOC"}], "x": [-Infinity]}',
]


@pytest.mark.parametrize("line", NON_FINITE_LINES)
def test_a_non_finite_number_is_skipped_and_never_written(tmp_path, capsys, line):
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl_bytes(GOOD) + line.encode() + b"\n")
    assert read(path)[1].skipped == {"non-finite number": 1}
    assert convert_main([str(path), str(tmp_path / "out.spacy"), "--strict"]) == 1
    assert "in.jsonl:4: non-finite number" in capsys.readouterr().err
    stats = ReadStats()
    records_to_examples(spacy.blank("en"), [json.loads(line)], stats=stats)
    assert stats.skipped == {"non-finite number": 1}
    with pytest.raises(ValueError, match="not valid JSON|non-finite"):
        list(iter_jsonl(path))


def test_predict_never_copies_a_non_finite_number(loop_nlp):
    nlp, optimizer = loop_nlp
    loop = AnnotationLoop(nlp, optimizer=optimizer)
    stream = [{"text": "Rome is big", "meta": {"score": float("nan")}}, {"text": "Oslo is cold", "n": [float("inf")]}]
    stream.append({"text": "Bern is small", "meta": {"id": 1}})
    proposed = list(loop.predict(stream))
    assert proposed and all(task["text"] == "Bern is small" for _, task in proposed)
    assert loop.stats["task skipped: non-finite number"] == 2
    for _, task in proposed:
        json.dumps(task, allow_nan=False)
        srsly.json_dumps(task)
    assert loop.update([{**rec("Rome is big", 0, 4), "meta": {"score": float("nan")}}]) == 0.0
    assert loop.stats["answer skipped: non-finite number"] == 1


def test_a_json_array_file_is_an_error_not_zero_records(tmp_path, capsys):
    path = tmp_path / "records.json"
    path.write_text(json.dumps(GOOD, indent=1), encoding="utf8")
    with pytest.raises(TeachDataError, match="is a JSON array, not JSON Lines"):
        read(path)
    with pytest.raises(SystemExit) as exit_info:
        convert_main([str(path), str(tmp_path / "out.spacy")])
    assert exit_info.value.code == 2 and "JSON array" in capsys.readouterr().err
    # A .jsonl file is read line by line, whatever it holds.
    lines = tmp_path / "records.jsonl"
    lines.write_text(json.dumps(GOOD) + "\n", encoding="utf8")
    assert read(lines)[1].skipped == {"not an object": 1}


@pytest.mark.parametrize("where", ["task", "answer"])
def test_a_tasks_tokens_are_parsed_once(monkeypatch, tmp_path, where):
    """The loop's task reader and evaluate's answer reader take the tokens
    `parse_task` / `parse_record` checked, and parse them no second time."""
    import spacy_binary_ner.records as records
    from spacy_binary_ner.loop.tasks import TaskText

    calls = []
    real = records.parse_tokens
    monkeypatch.setattr(records, "parse_tokens", lambda *args: calls.append(1) or real(*args))
    tokens = [{"text": "AB", "start": 0, "end": 2}, {"text": "CD", "start": 3, "end": 5}]
    task = {"text": "AB CD", "tokens": tokens, "spans": [{"start": 3, "end": 5, "label": "X"}], "answer": "accept"}
    if where == "task":
        text = TaskText.from_task(spacy.blank("en"), task)
        assert [t.text for t in text.doc] == ["AB", "CD"] and text.starts == [0, 3]
    else:
        path = tmp_path / "answers.jsonl"
        path.write_text(json.dumps(task) + "\n", encoding="utf8")
        docs, questions, _ = read_answers(spacy.blank("en"), path)
        assert [t.text for t in docs[0]] == ["AB", "CD"] and (questions[0].start, questions[0].end) == (1, 2)
    assert len(calls) == 1
