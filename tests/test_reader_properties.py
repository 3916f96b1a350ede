"""Property-based: random, partly broken teach records never crash the reader
with an unexplained exception, and every record is accounted for."""

import json

import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacy_binary_ner.data import REASONS, TeachDataError, TeachReader

NLP = spacy.blank("en")
TEXTS = ["Anna met Bob in Paris .", "Paris", "  ", "", "Big  Apple", "日本 东京"]

ints = st.one_of(st.integers(-3, 30), st.sampled_from(["1", None, 2.5, True]))
span = st.one_of(
    st.fixed_dictionaries(
        {"start": ints, "end": ints, "label": st.sampled_from(["PER", "LOC", "", 3])},
        optional={"token_start": ints},
    ),
    st.just({"start": 0}),
    st.just("span"),
)
token = st.one_of(
    st.fixed_dictionaries({"text": st.sampled_from(["Anna", "met", "", 1]), "start": ints, "end": ints}), st.just({})
)
record = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(st.sampled_from(TEXTS), st.text(max_size=12), st.just(None), st.just(5)),
        "spans": st.one_of(st.lists(span, max_size=3), st.just(None), st.just("x")),
        "tokens": st.one_of(st.lists(token, max_size=4), st.just("x")),
        "answer": st.sampled_from(["accept", "reject", "ignore", "maybe", None, 1]),
        "_input_hash": st.one_of(st.integers(0, 3), st.just([1]), st.just(None)),
        "complete": st.one_of(st.booleans(), st.just("yes")),
    },
)


def word_tokens(text):
    tokens, start = [], 0
    for word in text.split(" "):
        if word:
            tokens.append({"text": word, "start": start, "end": start + len(word)})
        start += len(word) + 1
    return tokens


@st.composite
def plausible_record(draw):
    """A record as a teach tool writes it, offsets often but not always on tokens."""
    text = draw(st.sampled_from(TEXTS[:2] + ["Bob lives in Rome . Anna too .", "高勇 是 中国 人"]))
    n = len(text)
    spans = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, n - 1))
        spans.append(
            {"start": start, "end": draw(st.integers(start + 1, n)), "label": draw(st.sampled_from(["PER", "LOC"]))}
        )
    out = {"text": text, "spans": spans, "answer": draw(st.sampled_from(["accept", "reject", "ignore"]))}
    if draw(st.booleans()):
        out["tokens"] = word_tokens(text)
    if draw(st.booleans()):
        out["_input_hash"] = draw(st.integers(0, 2))
    return out


line = st.one_of(
    plausible_record().map(json.dumps),
    plausible_record().map(json.dumps),
    plausible_record().map(json.dumps),
    record.map(json.dumps),
    st.sampled_from(["{broken", "[1, 2]", '"text"', "null", "{}"]),
)
reader_settings = st.fixed_dictionaries(
    {
        "alignment": st.sampled_from(["strict", "expand", "contract"]),
        "max_length": st.sampled_from([0, 1, 3]),
        "long_texts": st.sampled_from(["split", "skip"]),
        "labels": st.sampled_from([None, ["PER"]]),
    }
)


def read(tmp_path, files, complete_flags, settings_):
    reader = TeachReader(NLP, **settings_)
    for i, (lines, complete) in enumerate(zip(files, complete_flags)):
        path = tmp_path / f"f{i}.jsonl"
        path.write_text("".join(x + "\n" for x in lines), encoding="utf8")
        reader.read_path(path, complete=complete)
    return reader, reader.examples()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.lists(line, max_size=8), min_size=1, max_size=3),
    complete_flags=st.lists(st.booleans(), min_size=3, max_size=3),
    settings_=reader_settings,
)
def test_every_record_is_used_or_skipped_for_a_named_reason(tmp_path, files, complete_flags, settings_):
    reader, examples = read(tmp_path, files, complete_flags, settings_)
    for lines, stats in zip(files, reader.stats):
        assert stats.records == len(lines)
        assert stats.used + sum(stats.skipped.values()) == stats.records
        assert set(stats.skipped) <= set(REASONS)
        assert set(stats.spans) - {"read", "used"} <= set(REASONS)
        assert stats.spans["used"] <= stats.spans["read"]
    total = reader.total()
    assert total.examples == len(examples)
    for eg in examples:
        assert len(eg.reference) > 0
        if settings_["max_length"]:
            assert len(eg.reference) <= settings_["max_length"]
        # A reader's example never holds an answer that the targets would reject.
        ents = {(e.start, e.end, e.label_) for e in eg.reference.ents}
        rejects = {(s.start, s.end, s.label_) for s in eg.reference.spans.get("incorrect_spans", [])}
        assert not ents & rejects


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.lists(line, max_size=6), min_size=1, max_size=2), settings_=reader_settings)
def test_strict_mode_raises_only_explained_errors(tmp_path, files, settings_):
    try:
        reader, _ = read(tmp_path, files, [False, True], dict(settings_, strict=True))
    except TeachDataError as err:
        assert "Fix: " in str(err) and ".jsonl:" in str(err)
    else:
        for stats in reader.stats:
            assert set(stats.skipped) <= {"ignore answer"}
