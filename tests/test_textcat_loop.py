"""The text-category annotation loop against an oracle, on generated texts."""

import random

import pytest
import spacy
from spacy.util import fix_random_seed

from spacy_binary_ner.textcat.loop import TextcatLoop, accuracy, oracle_answer
from spacy_binary_ner.textcat.reader import parse_textcat_record

from .test_textcat_pipe import SMALL_MODEL

WORDS = {
    "SPORT": ["goal", "match", "team", "coach", "league"],
    "MONEY": ["bank", "stock", "market", "price", "loan"],
    "VOTE": ["election", "party", "minister", "vote", "senate"],
}
FILLER = ["the", "a", "today", "news", "big", "new", "said", "report"]
LABELS = list(WORDS)


def corpus(n: int, seed: int):
    rng = random.Random(seed)
    texts, gold = [], []
    for _ in range(n):
        label = rng.choice(LABELS)
        words = rng.sample(WORDS[label], 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        texts.append(" ".join(words))
        gold.append({other: float(other == label) for other in LABELS})
    return texts, gold


def make_loop(exclusive=True, **kwargs) -> TextcatLoop:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binary_textcat", config={"model": SMALL_MODEL, "exclusive": exclusive})
    nlp.config["initialize"]["components"]["binary_textcat"] = {"labels": LABELS}
    nlp.initialize()
    return TextcatLoop(nlp, **kwargs)


def run(loop: TextcatLoop, texts, gold, batch=8):
    by_text = dict(zip(texts, gold))
    asked, batch_answers = [], []
    for task in loop.questions({"text": t} for t in texts):
        asked.append(task)
        batch_answers.append(oracle_answer(task, by_text[task["text"]]))
        if len(batch_answers) == batch:
            loop.update(batch_answers)
            batch_answers = []
    if batch_answers:
        loop.update(batch_answers)
    return asked


@pytest.mark.parametrize("choice,per_text", [(False, 2), (True, 1)])
def test_loop_learns_from_an_oracle(choice, per_text):
    texts, gold = corpus(240, seed=0)
    test_texts, test_gold = corpus(60, seed=1)
    loop = make_loop(choice=choice, sorter="none", per_text=per_text)
    before = accuracy(loop.nlp, test_texts, test_gold)
    asked = run(loop, texts, gold)
    assert loop.exhausted and len(asked) == 240 * per_text
    after = accuracy(loop.nlp, test_texts, test_gold)
    assert after >= 0.9 and after > before + 0.3, (before, after)
    assert sum(loop.answer_counts.values()) == 240 * per_text and not loop.stats


def test_every_question_is_a_record_the_reader_takes():
    texts, _ = corpus(20, seed=0)
    for choice in (False, True):
        loop = make_loop(choice=choice, sorter="none", per_text=2)
        tasks = list(loop.questions({"text": t} for t in texts))
        assert len(tasks) == (20 if choice else 40)
        assert len({t["_task_hash"] for t in tasks}) == len(tasks)
        for task in tasks:
            record = parse_textcat_record({**task, "answer": "accept"})
            assert record.text == task["text"] and 0.0 <= task["meta"]["score"] <= 1.0
        if choice:
            # Exclusive: the model's one choice is pre-selected.
            assert all(len(t["accept"]) == 1 and len(t["options"]) == 3 for t in tasks)


def test_uncertainty_asks_the_labels_closest_to_one_half():
    texts, gold = corpus(200, seed=0)
    loop = make_loop(exclusive=False, sorter="none")
    run(loop, texts[:80], gold[:80])
    everything = list(loop.questions({"text": t} for t in texts[80:]))
    loop.sorter = "uncertainty"
    tasks = list(loop.questions({"text": t} for t in texts[80:]))
    assert 0 < len(tasks) < len(everything)

    def mean_uncertainty(ts):
        return sum(1 - abs(2 * t["meta"]["score"] - 1) for t in ts) / len(ts)

    assert mean_uncertainty(tasks) >= mean_uncertainty(everything)


def test_bad_source_lines_and_answers_are_counted_not_raised():
    loop = make_loop(sorter="none")
    stream = [{"text": "goal match the"}, {"text": ""}, {"no": "text"}, "a string", {"text": "bank loan a"}]
    tasks = list(loop.questions(stream))
    assert [t["text"] for t in tasks] == ["goal match the", "bank loan a"]
    assert loop.stats == {
        "source skipped: empty text": 1,
        "source skipped: missing key": 1,
        "source skipped: not an object": 1,
    }
    loss = loop.update([{**tasks[0], "answer": "maybe"}, {**tasks[1], "label": "", "answer": "accept"}])
    assert loss == 0.0
    assert loop.stats["answer skipped: unknown answer"] == 1 and loop.stats["answer skipped: bad field"] == 1
    assert loop.update([{**tasks[0], "answer": "accept"}]) > 0.0


def test_unknown_sorter_names_the_choices():
    with pytest.raises(ValueError, match="uncertainty, none"):
        make_loop(sorter="best")


def test_a_text_category_answer_is_parsed_once_from_the_server_to_the_step(monkeypatch):
    """The server's check parses an answer; the loop and the reader take the
    parsed record as it is, replays included."""
    import spacy_binary_ner.textcat.loop as loop_module
    import spacy_binary_ner.textcat.reader as reader_module
    from spacy_binary_ner.server.answers import read_textcat_answer

    loop = make_loop(sorter="none", replay=5)
    tasks = list(loop.questions({"text": t} for t in corpus(6, seed=0)[0]))
    calls: list = []
    real = reader_module.parse_textcat_record

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    for module in (reader_module, loop_module):
        monkeypatch.setattr(module, "parse_textcat_record", counting)

    checked = [
        read_textcat_answer({**task, "answer": "accept", "key": f"k{i}"}, LABELS) for i, task in enumerate(tasks)
    ]
    assert len(calls) == len(tasks)
    for i in range(0, len(checked), 2):
        assert loop.update([a.record for a in checked[i : i + 2]]) > 0.0
    assert len(calls) == len(tasks), "the loop or the reader parsed an answer again"
    assert loop.answer_counts == {"accept": len(tasks)}
