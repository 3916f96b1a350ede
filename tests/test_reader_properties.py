"""Property-based: random, partly broken teach records never crash the reader
with an unexplained exception, and every record is accounted for."""

import json
import re

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


# Issue 44: the classes the generators above do not make (fields that contradict each other, look-alike labels,
# hash types, non-finite numbers), and the content check: every used record trains exactly what its fields say.

SPELLED = ["Anna met Bob in Paris .", "Anna  met Bob", "Paris\nis big ", "高勇是中国人", "New York City"]
LOOK_ALIKE = ["PER", "per", "Per", "LOC", " PER", "PER ", " ", "\t"]
HASHES = [None, None, 7, "7", "007", 8, "8", "x7", 7.0, True]
NON_FINITE = ["NaN", "Infinity", "-Infinity"]


def spelling_tokens(text):
    """Tokens that spell the text exactly: words, and a token of every
    whitespace run but a single space after a word (as spaCy makes them)."""
    tokens, k = [], 0
    for piece in re.findall(r"\S+|\s+", text):
        if piece.isspace() and not (piece == " " and tokens and not tokens[-1]["text"].isspace()):
            if piece.startswith(" ") and tokens and not tokens[-1]["text"].isspace():
                piece, k = piece[1:], k + 1
            tokens.append({"text": piece, "start": k, "end": k + len(piece)})
        elif not piece.isspace():
            for part in [piece] if piece.isascii() else list(piece):
                tokens.append({"text": part, "start": k, "end": k + len(part)})
                k += len(part)
            continue
        k += len(piece)
    return tokens


MUTATIONS = ["none", "token text", "token offsets", "ws flipped", "token dropped", "token_start", "span text"]


@st.composite
def checked_record(draw):
    """A record whose fields agree, then perhaps one field made to contradict another."""
    text = draw(st.sampled_from(SPELLED))
    tokens = spelling_tokens(text)
    words = [k for k, t in enumerate(tokens) if not t["text"].isspace()]
    spans = []
    for _ in range(draw(st.integers(1, 2))):
        i = draw(st.sampled_from(words))
        j = draw(st.sampled_from([k for k in words if k >= i]))
        span = {"start": tokens[i]["start"], "end": tokens[j]["end"], "label": draw(st.sampled_from(LOOK_ALIKE))}
        if draw(st.booleans()):
            span.update(token_start=i, token_end=j)
        if draw(st.booleans()):
            span["text"] = text[span["start"] : span["end"]]
        spans.append(span)
    out = {"text": text, "spans": spans, "answer": draw(st.sampled_from(["accept", "accept", "reject"]))}
    if draw(st.booleans()):
        out["tokens"] = [dict(t, ws=bool(text[t["end"] : t["end"] + 1] == " ")) for t in tokens]
    elif draw(st.booleans()):
        out["tokens"] = tokens
    given_hash = draw(st.sampled_from(HASHES))
    if given_hash is not None:
        out["_input_hash"] = given_hash
    mutation = draw(st.sampled_from(MUTATIONS))
    toks, k = out.get("tokens"), draw(st.integers(0, 20))
    if mutation == "token text" and toks:
        toks[k % len(toks)] = dict(toks[k % len(toks)], text="X")
    elif mutation == "token offsets" and toks:
        toks[k % len(toks)] = dict(toks[k % len(toks)], start=toks[k % len(toks)]["start"] + 1)
    elif mutation == "ws flipped" and toks and "ws" in toks[0]:
        toks[k % len(toks)] = dict(toks[k % len(toks)], ws=not toks[k % len(toks)]["ws"])
    elif mutation == "token dropped" and toks and len(toks) > 1:
        del toks[k % len(toks)]
    elif mutation == "token_start" and "token_start" in spans[0]:
        spans[0]["token_start"] += 1
    elif mutation == "span text":
        spans[0]["text"] = text[spans[0]["start"] : spans[0]["end"]] + "x"
    return out


def non_finite_line(record, constant):
    """The record's line with NaN or Infinity put in a number's place."""
    line = json.dumps(record, ensure_ascii=False)
    return line.replace('"start": ', f'"start": {constant}, "x": ', 1) if '"start": ' in line else line


content_line = st.one_of(
    checked_record().map(lambda r: (r, json.dumps(r, ensure_ascii=False))),
    checked_record().map(lambda r: (r, json.dumps(r, ensure_ascii=False))),
    st.tuples(checked_record(), st.sampled_from(NON_FINITE)).map(lambda a: (None, non_finite_line(*a))),
    st.tuples(checked_record(), st.sampled_from(NON_FINITE)).map(
        lambda a: (None, json.dumps({**a[0], "meta": {"score": float(a[1])}}))
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(content_line, min_size=1, max_size=10), complete=st.booleans())
def test_every_used_record_trains_exactly_what_its_fields_say(tmp_path, lines, complete):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(line + "\n" for _, line in lines), encoding="utf8")
    reader = TeachReader(NLP)
    reader.read_path(path, complete=complete)
    examples = reader.examples()
    (stats,) = reader.stats
    assert stats.records == len(lines) and stats.used + sum(stats.skipped.values()) == stats.records
    assert set(stats.skipped) <= set(REASONS)
    used = [record for (record, _), outcome in zip(lines, reader.outcomes()) if outcome is None]
    assert None not in used  # a line with NaN or Infinity is never used
    spans_of = {}
    for record in used:
        for span in record["spans"]:
            spans_of.setdefault(record["text"], set()).add((span["start"], span["end"], span["label"]))
    assert {r["text"] for r in used} == {eg.reference.text for eg in examples}
    for eg in examples:
        text = eg.reference.text
        assert eg.predicted.text == text
        for span in list(eg.reference.ents) + list(eg.reference.spans.get("incorrect_spans", [])):
            assert (span.start_char, span.end_char, span.label_) in spans_of[text]
            assert span.label_ == span.label_.strip() and span.label_
    # Labels that differ only in case are both counted, and warned about once the second spelling is read.
    labels = {label for spans in spans_of.values() for _, _, label in spans}
    alike = {label.lower() for label in labels if sum(other.lower() == label.lower() for other in labels) > 1}
    if alike:
        assert stats.labels_differing_in_case and "labels differ only in case" in stats.where


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(content_line, min_size=1, max_size=6))
def test_strict_stops_at_every_new_class(tmp_path, lines):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(line + "\n" for _, line in lines), encoding="utf8")
    reader = TeachReader(NLP, strict=True)
    try:
        reader.read_path(path)
        reader.examples()
    except TeachDataError as err:
        assert "Fix: " in str(err) and "in.jsonl:" in str(err)
    else:
        assert set(reader.stats[0].skipped) <= {"ignore answer"}
        assert not reader.stats[0].labels_differing_in_case
