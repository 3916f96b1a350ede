"""The annotation loop: questions, updates, sorters and pattern cold start."""

import itertools
import random
from typing import List

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.util import fix_random_seed

from spacy_binary_ner.loop import (
    LOOP_THRESHOLD,
    AnnotationLoop,
    PatternMatcher,
    PatternSchedule,
    TaskText,
    by_label,
    initialize_pipeline,
    prefer_high_scores,
    prefer_random,
    prefer_uncertain,
    set_hashes,
)

from .util import SMALL_MODEL

CITIES = ["Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Oslo", "Prague"]
PEOPLE = ["Anna", "Omar", "Lena", "Tom", "Mia", "Ravi"]
TEMPLATES = ["{p} flew to {c} today .", "{p} said {c} is large .", "We met {p} in {c} .", "{c} welcomed {p} ."]


def make_nlp(labels=("LOC",), seed: int = 0) -> Language:
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    return nlp


def toy_corpus(n: int, seed: int) -> List[dict]:
    """Sentences with one city each; gold spans are the cities (LOC)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        person, city = rng.choice(PEOPLE), rng.choice(CITIES)
        text = rng.choice(TEMPLATES).format(p=person, c=city)
        start = text.index(city)
        records.append({"text": text, "spans": [{"start": start, "end": start + len(city), "label": "LOC"}]})
    return records


def oracle(task: dict, gold: dict) -> dict:
    span = task["spans"][0]
    task["answer"] = "accept" if (span["start"], span["end"], span["label"]) in gold[task["text"]] else "reject"
    return task


def span_probability(loop: AnnotationLoop, text: str, start: int, end: int, label: str) -> float:
    """The model's probability of a span (character offsets) and label."""
    task = {"text": text}
    text_obj = TaskText.from_task(loop.nlp, task)
    token_start = text_obj.starts.index(start)
    token_end = text_obj.ends.index(end) + 1
    ((candidates, lookup),) = loop.score_texts([text_obj])
    return lookup(token_start, token_end, label)


def test_predict_yields_one_span_per_task_with_stable_hashes():
    nlp = make_nlp()
    optimizer = initialize_pipeline(nlp, ["LOC", "PER"], ["Anna flew to Paris ."])
    loop = AnnotationLoop(nlp, optimizer=optimizer, max_per_text=5)
    stream = [{"text": "Anna flew to Paris today ."}, {"text": "Rome is large ."}]
    first = list(loop.predict(stream))
    second = list(loop.predict(stream))
    assert len(first) == 10  # max_per_text spans for each of the 2 texts
    for (score, task), (score2, task2) in zip(first, second):
        assert len(task["spans"]) == 1
        span = task["spans"][0]
        assert span["label"] in ("LOC", "PER")
        assert task["text"][span["start"] : span["end"]] == task["text"].split()[span["token_start"]] or (
            span["token_end"] > span["token_start"]
        )
        assert task["meta"]["score"] == score and 0.0 <= score <= 1.0
        assert (task["_input_hash"], task["_task_hash"]) == (task2["_input_hash"], task2["_task_hash"])
    hashes = [task["_task_hash"] for _, task in first]
    assert len(set(hashes)) == len(hashes)
    # Scores per text come highest first.
    text_scores = [s for s, t in first if t["text"] == stream[0]["text"]]
    assert text_scores == sorted(text_scores, reverse=True)


def test_sorter_with_a_key_keeps_one_average_per_label():
    # LOC is scored near 0.5 and PER near 0: one shared average never lets a
    # PER question through before patience runs out; per label, PER's most
    # uncertain questions pass too.
    rng = random.Random(0)
    stream = []
    for i in range(400):
        stream.append((rng.uniform(0.4, 0.6), {"i": i, "spans": [{"label": "LOC"}]}))
        stream.append((rng.uniform(0.0, 0.02), {"i": i, "spans": [{"label": "PER"}]}))
    shared = [t["spans"][0]["label"] for t in prefer_uncertain(stream, patience=1000)]
    keyed = [t["spans"][0]["label"] for t in prefer_uncertain(stream, patience=1000, key=by_label)]
    assert shared.count("PER") <= 2
    assert keyed.count("PER") > 100 and keyed.count("LOC") > 100


def test_set_hashes_is_stable_and_keeps_input_hash():
    a = set_hashes({"text": "Rome is large .", "spans": [{"start": 0, "end": 4, "label": "LOC"}]})
    b = set_hashes({"text": "Rome is large .", "spans": [{"start": 0, "end": 4, "label": "PER"}]})
    assert a["_input_hash"] == b["_input_hash"] and a["_task_hash"] != b["_task_hash"]
    assert set_hashes({"text": "x", "_input_hash": 7})["_input_hash"] == 7
    # A fixed value: hashes must not depend on Python's per-process hash seed.
    assert set_hashes({"text": "Rome is large ."})["_input_hash"] == a["_input_hash"]
    assert isinstance(a["_input_hash"], int)


def test_loop_learns_a_toy_entity_from_answers_alone():
    nlp = make_nlp(seed=0)
    pool = toy_corpus(300, seed=1)
    held_out = toy_corpus(40, seed=2)
    gold = {r["text"]: {(s["start"], s["end"], s["label"]) for s in r["spans"]} for r in pool}
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    optimizer.learn_rate = 0.005
    loop = AnnotationLoop(nlp, optimizer=optimizer, max_per_text=4, replay=10, seed=0)
    # Three passes over the pool at most: the loop never asks a question twice.
    questions = loop(itertools.chain.from_iterable([[{"text": r["text"]} for r in pool]] * 3))
    for _ in range(25):
        batch = [oracle(task, gold) for _, task in zip(range(10), questions)]
        assert batch, "the loop ran out of questions"
        loop.update(batch)
    assert loop.answer_counts["accept"] > 20
    found = [{(e.start_char, e.end_char, e.label_) for e in nlp(r["text"]).ents} for r in held_out]
    truth = [{(s["start"], s["end"], s["label"]) for s in r["spans"]} for r in held_out]
    tp = sum(len(f & t) for f, t in zip(found, truth))
    precision = tp / max(1, sum(len(f) for f in found))
    recall = tp / sum(len(t) for t in truth)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)


def test_reject_lowers_that_label_far_more_than_the_others():
    nlp = make_nlp(seed=0)
    text = "Anna flew to Paris today ."
    optimizer = initialize_pipeline(nlp, ["LOC", "ORG", "PER"], [text])
    # Teach the span as a likely LOC first, so there is a probability to lower.
    accept = {"text": text, "spans": [{"start": 13, "end": 18, "label": "LOC"}], "answer": "accept"}
    optimizer.learn_rate = 0.01
    warm = AnnotationLoop(nlp, optimizer=optimizer, drop=0.0, average_weights=False)
    for _ in range(10):
        warm.update([dict(accept)])
    # A fresh loop and optimizer: no remembered accept, no Adam momentum from it.
    loop = AnnotationLoop(nlp, drop=0.0, average_weights=False)
    loop.optimizer.learn_rate = 0.01
    before = {k: span_probability(loop, text, 13, 18, k) for k in ("LOC", "ORG", "PER")}
    reject = {"text": text, "spans": [{"start": 13, "end": 18, "label": "LOC"}], "answer": "reject"}
    loss = loop.update([reject])
    after = {k: span_probability(loop, text, 13, 18, k) for k in ("LOC", "ORG", "PER")}
    assert loss > 0
    drop_loc = before["LOC"] - after["LOC"]
    moved_others = max(abs(after[k] - before[k]) for k in ("ORG", "PER"))
    assert before["LOC"] > 0.3 and drop_loc > 0.01, (before, after)
    # The rejected label moves at least 10 times as much as any other label.
    assert drop_loc >= 10 * moved_others, (before, after)


@pytest.mark.parametrize("average_weights", [True, False])
def test_loop_proposes_with_the_averaged_weights(average_weights):
    nlp = make_nlp(seed=0)
    pool = toy_corpus(60, seed=1)
    gold = {r["text"]: {(s["start"], s["end"], s["label"]) for s in r["spans"]} for r in pool}
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    loop = AnnotationLoop(nlp, optimizer=optimizer, average_weights=average_weights, seed=0)
    assert (optimizer.averages is not None) == average_weights
    questions = loop({"text": r["text"]} for r in pool)
    for _ in range(5):
        loop.update([oracle(task, gold) for _, task in zip(range(6), questions)])
    text = pool[0]["text"]
    start = pool[0]["spans"][0]["start"]
    end = pool[0]["spans"][0]["end"]
    proposed = span_probability(loop, text, start, end, "LOC")
    text_obj = TaskText.from_task(loop.nlp, {"text": text})
    i, j = text_obj.starts.index(start), text_obj.ends.index(end) + 1

    def probability() -> float:
        ((_, lookup),) = loop.proposer([text_obj.doc])
        return lookup(i, j, "LOC")

    live = probability()
    with loop.averaged_params():
        averaged = probability()
    assert live != averaged if average_weights else live == averaged
    assert proposed == averaged
    assert probability() == live  # the live weights are back


def spied_loop(record_loss_kwargs, **loop_settings):
    """A loop over a toy corpus whose pipe records, per update, what
    `record_loss_kwargs(kwargs)` reads from the keyword arguments of `get_loss`."""
    nlp = make_nlp(seed=0)
    pool = toy_corpus(20, seed=1)
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    pipe = nlp.get_pipe("binary_ner")
    seen = []
    get_loss = pipe.get_loss

    def spy(examples, scores, **kwargs):
        seen.append(record_loss_kwargs(kwargs))
        return get_loss(examples, scores, **kwargs)

    pipe.get_loss = spy
    loop = AnnotationLoop(nlp, optimizer=optimizer, **loop_settings)
    answer = {"text": pool[0]["text"], "spans": [dict(pool[0]["spans"][0], label="LOC")], "answer": "accept"}
    return loop, pipe, answer, seen


@pytest.mark.parametrize("self_training", [False, True])
def test_loop_updates_without_self_training_unless_asked(self_training):
    loop, pipe, answer, seen = spied_loop(lambda kwargs: kwargs.get("self_training", True), self_training=self_training)
    pipe.cfg["pseudo_above"] = 0.9
    loop.update([answer])
    assert seen == [self_training]
    assert pipe.cfg["pseudo_above"] == 0.9  # the pipeline's setting is back


@pytest.mark.parametrize("unknown_decay", [False, True])
def test_loop_keeps_the_prior_constant_unless_asked(unknown_decay):
    loop, pipe, answer, seen = spied_loop(lambda kwargs: kwargs.get("unknown_weights"), unknown_decay=unknown_decay)
    pipe.cfg["unknown_weight"], pipe.cfg["unknown_decay"] = 0.03, 1.0
    loop.update([answer])
    loop.update([answer])
    # None: the component's constant unknown_weight; else the text's weight at each visit.
    assert seen == ([[0.03], [0.015]] if unknown_decay else [None, None])


@pytest.mark.parametrize("threshold,expected", [("default", LOOP_THRESHOLD), (None, 0.5), (0.35, 0.35)])
def test_initialize_pipeline_sets_the_loop_threshold(threshold, expected):
    nlp = make_nlp()
    assert nlp.get_pipe("binary_ner").cfg["threshold"] == 0.5
    kwargs = {} if threshold == "default" else {"threshold": threshold}
    initialize_pipeline(nlp, ["LOC"], ["Rome is large ."], **kwargs)
    assert nlp.get_pipe("binary_ner").cfg["threshold"] == expected
    # The threshold decides doc.ents and is saved with the pipeline.
    reloaded = spacy.blank("en")
    reloaded.add_pipe("binary_ner", config={"model": SMALL_MODEL})
    reloaded.from_bytes(nlp.to_bytes())
    assert reloaded.get_pipe("binary_ner").cfg["threshold"] == pytest.approx(expected)


def test_initialize_pipeline_rejects_a_threshold_outside_0_1():
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        initialize_pipeline(make_nlp(), ["LOC"], ["Rome ."], threshold=1.5)


def test_update_rejects_bad_answers_and_skips_ignores():
    nlp = make_nlp()
    optimizer = initialize_pipeline(nlp, ["LOC"], ["Rome is large ."])
    loop = AnnotationLoop(nlp, optimizer=optimizer)
    ignore = {"text": "Rome is large .", "spans": [{"start": 0, "end": 4, "label": "LOC"}], "answer": "ignore"}
    assert loop.update([ignore]) == 0.0
    assert loop.answer_counts["ignore"] == 1 and loop.n_answers == 1
    assert loop.update([{"text": "Rome is large .", "spans": [], "answer": "maybe"}]) == 0.0
    assert loop.stats["answer skipped: unknown answer"] == 1
    unknown = {"text": "Rome is large .", "spans": [{"start": 0, "end": 4, "label": "GPE"}], "answer": "accept"}
    assert loop.update([unknown]) == 0.0
    assert loop.stats["answer skipped: unknown label"] == 1


def test_pattern_matcher_phrase_token_and_chinese():
    nlp = spacy.blank("en")
    matcher = PatternMatcher(
        nlp,
        [
            {"label": "LOC", "pattern": "New York"},
            {"label": "LOC", "pattern": [{"LOWER": "paris"}]},
            {"label": "ORG", "pattern": "New York Times"},
        ],
    )
    doc = nlp("The New York Times is in paris .")
    # Every match is a question, overlaps included.
    assert matcher(doc) == [(1, 3, "LOC", 0), (1, 4, "ORG", 2), (6, 7, "LOC", 1)]
    # Two labels on the very same span are both questions.
    two = PatternMatcher(nlp, [{"label": "LOC", "pattern": "Paris"}, {"label": "PER", "pattern": "Paris"}])
    assert two(nlp("Paris Hilton")) == [(0, 1, "LOC", 0), (0, 1, "PER", 1)]
    zh = spacy.blank("zh")  # character segmentation
    zh_patterns = [{"label": "CONT", "pattern": "中国国籍"}, {"label": "CONT", "pattern": "中国"}]
    zh_doc = zh("高勇：男，中国国籍。中国人")
    assert PatternMatcher(zh, zh_patterns)(zh_doc) == [(5, 7, "CONT", 1), (5, 9, "CONT", 0), (10, 12, "CONT", 1)]
    with pytest.raises(ValueError, match="Pattern 1"):
        PatternMatcher(nlp, [{"pattern": "x"}])
    with pytest.raises(ValueError, match="Pattern 2"):
        PatternMatcher(nlp, [{"label": "A", "pattern": "x"}, {"label": "B", "pattern": 3}])


def test_cold_start_asks_pattern_matches_first_then_mixes():
    nlp = make_nlp()
    pool = toy_corpus(60, seed=3)
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    patterns = PatternMatcher(nlp, [{"label": "LOC", "pattern": c} for c in CITIES])
    loop = AnnotationLoop(nlp, optimizer=optimizer, patterns=patterns, schedule=PatternSchedule(ratio=0.5, until=20))
    questions = loop(pool)
    first = [next(questions) for _ in range(10)]
    sources = [task["meta"]["source"] for task in first]
    assert sources[0] == "pattern"
    assert sources.count("pattern") == 5
    for task in first:
        if task["meta"]["source"] == "pattern":
            span = task["spans"][0]
            assert task["text"][span["start"] : span["end"]] in CITIES
    # After patterns_until answers, only the model proposes.
    loop.update([dict(t, answer="accept" if t["meta"]["source"] == "pattern" else "reject") for t in first])
    loop.update([dict(t, answer="reject") for t in [next(questions) for _ in range(10)]])
    later = [next(questions)["meta"]["source"] for _ in range(10)]
    assert later == ["model"] * 10


def test_a_pattern_with_max_answers_is_retired():
    nlp = make_nlp()
    pool = toy_corpus(80, seed=4)
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    # "We" is never a place: after 4 answers it is no longer asked.
    patterns = PatternMatcher(
        nlp, [{"label": "LOC", "pattern": "We"}] + [{"label": "LOC", "pattern": c} for c in CITIES]
    )
    loop = AnnotationLoop(
        nlp, optimizer=optimizer, patterns=patterns, schedule=PatternSchedule(ratio=1.0, max_answers=4)
    )
    gold = {r["text"]: {(s["start"], s["end"], s["label"]) for s in r["spans"]} for r in pool}
    questions = loop(pool)
    asked = []
    for _ in range(8):
        batch = [oracle(next(questions), gold) for _ in range(5)]
        asked += batch
        loop.update(batch)
    we = [t for t in asked if t["meta"].get("pattern") == 0]
    assert all(t["answer"] == "reject" for t in we)
    assert 4 <= len(we) < 10
    assert loop.pattern_retired(0)
    assert loop.stats["pattern match skipped: pattern retired"] > 0
    late = [next(questions) for _ in range(20)]
    assert not [t for t in late if t["meta"].get("pattern") == 0]
    # No cap (the default) keeps every pattern; a cap on answers retires even a good one.
    keep = AnnotationLoop(nlp, optimizer=optimizer, patterns=patterns)
    keep.pattern_answers[0] = loop.pattern_answers[0]
    assert not keep.pattern_retired(0)
    capped = AnnotationLoop(nlp, optimizer=optimizer, patterns=patterns, schedule=PatternSchedule(max_answers=3))
    capped.pattern_answers[1] = {"accept": 3, "reject": 0}
    capped.pattern_answers[2] = {"accept": 2, "reject": 0}
    assert capped.pattern_retired(1) and not capped.pattern_retired(2)


def test_pattern_lookahead_finds_matches_before_the_model_reaches_them():
    nlp = make_nlp()
    pool = [{"text": f"Anna met Omar on day {i} ."} for i in range(40)]
    pool[30] = {"text": "Lena flew to Oslo today ."}
    pool[35] = {"text": "Oslo is cold ."}
    optimizer = initialize_pipeline(nlp, ["LOC"], pool[:5])
    patterns = PatternMatcher(nlp, [{"label": "LOC", "pattern": "Oslo"}])
    plain = AnnotationLoop(nlp, optimizer=optimizer, patterns=patterns, chunk_size=4)
    first = [next(iter_) for iter_ in [plain(pool)] for _ in range(6)]
    assert all(t["meta"]["source"] == "model" for t in first)
    ahead = AnnotationLoop(
        nlp, optimizer=optimizer, patterns=patterns, chunk_size=4, schedule=PatternSchedule(lookahead=40)
    )
    questions = ahead(pool)
    first = [next(questions) for _ in range(6)]
    found = [t for t in first if t["meta"]["source"] == "pattern"]
    assert [t["text"] for t in found] == [pool[30]["text"], pool[35]["text"]]
    assert all(0.0 <= t["meta"]["score"] <= 1.0 for t in found)
    assert all(t["text"][t["spans"][0]["start"] : t["spans"][0]["end"]] == "Oslo" for t in found)
    # The model still reads the texts in order, each once.
    later = [t for t in questions if t["meta"]["source"] == "model"]
    texts = [t["text"] for t in first + later if t["meta"]["source"] == "model"]
    order = [pool.index({"text": text}) for text in dict.fromkeys(texts)]
    assert order == sorted(order) and ahead.stats["texts scored"] == len(pool)
    with pytest.raises(ValueError, match="pattern_lookahead"):
        AnnotationLoop(nlp, optimizer=optimizer, patterns=patterns, schedule=PatternSchedule(lookahead=-1))


def test_patterns_fill_the_queue_when_the_model_proposes_nothing_new():
    nlp = make_nlp()
    pool = [{"text": "Rome is large ."}] * 3
    optimizer = initialize_pipeline(nlp, ["LOC"], pool)
    patterns = PatternMatcher(nlp, [{"label": "LOC", "pattern": "Rome"}])
    loop = AnnotationLoop(
        nlp, optimizer=optimizer, patterns=patterns, schedule=PatternSchedule(ratio=0.1), max_per_text=1
    )
    asked = list(loop(pool))
    # The same text three times: each question is asked once, the pattern match included.
    assert len(asked) == len({t["_task_hash"] for t in asked})
    assert "pattern" in [t["meta"]["source"] for t in asked]
    assert loop.stats["question skipped: asked before"] >= 2


@pytest.mark.parametrize("sorter", [prefer_uncertain, prefer_high_scores])
def test_sorter_never_starves_when_scores_are_near_0_or_1(sorter):
    rng = random.Random(0)
    scores = [rng.choice([1e-4, 1e-5, 1 - 1e-4, 1 - 1e-5]) for _ in range(1000)]
    stream = [(s, {"i": i}) for i, s in enumerate(scores)]
    selected = list(sorter(stream, patience=20))
    # At least one of every `patience` tasks comes through, spread over the stream.
    assert len(selected) >= 1000 // 20
    positions = [t["i"] for t in selected]
    assert max(b - a for a, b in zip([-1] + positions, positions + [1000])) <= 21
    # The same score everywhere: everything passes.
    assert len(list(sorter([(0.0, {}) for _ in range(50)]))) == 50


def test_uncertainty_follows_a_shifting_stream_and_prefers_the_uncertain():
    # Scores drift from around 0.5 to around 0.01: the moving average follows,
    # so the late, low-scored part of the stream still yields questions.
    rng = numpy.random.default_rng(0)
    centers = numpy.linspace(0.5, 0.01, 2000)
    scores = numpy.clip(centers + rng.normal(0, 0.005, 2000), 1e-6, 1 - 1e-6)
    selected = [t["i"] for t in prefer_uncertain((float(s), {"i": i}) for i, s in enumerate(scores))]
    assert sum(1 for i in selected if i >= 1500) >= 100
    # Among mixed scores, the selected ones are more uncertain than the rest.
    mixed = rng.uniform(0, 1, 2000)
    chosen = {t["i"] for t in prefer_uncertain((float(s), {"i": i}) for i, s in enumerate(mixed))}
    distance = numpy.abs(mixed - 0.5)
    assert distance[list(chosen)].mean() < distance[[i for i in range(2000) if i not in chosen]].mean() - 0.1


def test_random_sorter_ignores_scores_and_is_seeded():
    stream = [(i / 100, {"i": i}) for i in range(100)]
    a = [t["i"] for t in prefer_random(stream, rate=0.3, seed=1)]
    b = [t["i"] for t in prefer_random(stream, rate=0.3, seed=1)]
    assert a == b and 15 <= len(a) <= 45
    with pytest.raises(ValueError):
        list(prefer_random(stream, rate=0.0))


def test_loop_without_labels_or_with_unknown_sorter_fails_clearly():
    nlp = make_nlp()
    with pytest.raises(ValueError, match="initialize_pipeline"):
        AnnotationLoop(nlp)
    initialize_pipeline(nlp, ["LOC"], ["Rome ."])
    with pytest.raises(ValueError, match="Unknown sorter"):
        AnnotationLoop(nlp, sorter="smallest")
    with pytest.raises(ValueError, match="No binary_ner"):
        AnnotationLoop(spacy.blank("en"))


def test_a_task_with_bad_tokens_is_named():
    nlp = make_nlp()
    optimizer = initialize_pipeline(nlp, ["LOC"], ["Rome is large ."])
    loop = AnnotationLoop(nlp, optimizer=optimizer)
    bad = {"text": "Rome is", "tokens": [{"text": "Rome", "start": 0, "end": 4}, {"text": "is", "start": 2, "end": 7}]}
    with pytest.raises(ValueError, match="bad tokens.*overlaps"):
        TaskText.from_task(loop.nlp, bad)
    assert list(loop.predict([bad])) == [] and loop.stats["task skipped: bad tokens"] == 1
    # Given tokens are honoured, whitespace included.
    given = {
        "text": "高勇 男",
        "tokens": [{"text": "高勇", "start": 0, "end": 2, "ws": True}, {"text": "男", "start": 3, "end": 4}],
    }
    assert TaskText.from_task(loop.nlp, given).doc.text == "高勇 男"
