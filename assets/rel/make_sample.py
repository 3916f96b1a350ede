"""Write the small relation sample of assets/rel/: invented English and
Chinese sentences about people (PER), organizations (ORG) and places (LOC)
with the relations Work_For (PER, ORG), Live_In (PER, LOC) and Based_In (ORG,
LOC), each as simulated teach answers (one question per text: a related pair
with probability 0.5, else an unrelated one; the gold label with probability
0.5, else a random one; answered accept or reject; every fourth answer in
Prodigy's form, `head` / `child` as last tokens with `head_span` /
`child_span`) and complete dev annotations. Seeded: running it again writes
the same files.

    python assets/rel/make_sample.py [OUT_DIR]
"""

import json
import random
import sys
from pathlib import Path

LABELS = ["Based_In", "Live_In", "Work_For"]
WORDS = {
    "en": {
        "PER": [
            "Anna Berg",
            "Tom Hale",
            "Maria Costa",
            "Li Wei",
            "John Smith",
            "Sara Novak",
            "Omar Haddad",
            "Eva Lind",
        ],
        "ORG": ["Acme Corp", "the Red Cross", "Globex", "Nordbank", "the city council", "Initech", "Umbrella Labs"],
        "LOC": ["Paris", "Boston", "Oslo", "New Delhi", "Lagos", "Lima", "Kyoto", "Cape Town"],
    },
    "zh": {
        "PER": ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "孙悦"],
        "ORG": ["华信公司", "红十字会", "东方银行", "市政府", "长江集团", "星海科技", "南方日报"],
        "LOC": ["北京", "上海", "杭州", "成都", "西安", "广州", "南京", "武汉"],
    },
}
# Templates: (pieces, relations as (head slot, child slot, label)); a slot is (label, index).
TEMPLATES = {
    "en": [
        (["{PER0}", "works for", "{ORG0}", "."], [("PER0", "ORG0", "Work_For")]),
        (["{PER0}", "lives in", "{LOC0}", "."], [("PER0", "LOC0", "Live_In")]),
        (["{ORG0}", "is based in", "{LOC0}", "."], [("ORG0", "LOC0", "Based_In")]),
        (
            ["{PER0}", ", who works for", "{ORG0}", ", lives in", "{LOC0}", "."],
            [("PER0", "ORG0", "Work_For"), ("PER0", "LOC0", "Live_In")],
        ),
        (
            ["{ORG0}", ", based in", "{LOC0}", ", hired", "{PER0}", "."],
            [("ORG0", "LOC0", "Based_In"), ("PER0", "ORG0", "Work_For")],
        ),
        (["{PER0}", "met", "{PER1}", "in", "{LOC0}", "."], []),
        (["{PER0}", "visited", "{LOC0}", "with a friend from", "{ORG0}", "."], []),
    ],
    "zh": [
        (["{PER0}", "在", "{ORG0}", "工作。"], [("PER0", "ORG0", "Work_For")]),
        (["{PER0}", "住在", "{LOC0}", "。"], [("PER0", "LOC0", "Live_In")]),
        (["{ORG0}", "总部位于", "{LOC0}", "。"], [("ORG0", "LOC0", "Based_In")]),
        (
            ["住在", "{LOC0}", "的", "{PER0}", "在", "{ORG0}", "工作。"],
            [("PER0", "LOC0", "Live_In"), ("PER0", "ORG0", "Work_For")],
        ),
        (["{PER0}", "去", "{LOC0}", "见了", "{PER1}", "。"], []),
        (["{PER0}", "在", "{LOC0}", "参观了", "{ORG0}", "的展览。"], []),
    ],
}
N_TEXTS, N_DEV = 120, 40


def make_record(lang: str, rng: random.Random) -> dict:
    """One gold record: text, tokens, spans, relations (span indices)."""
    pieces, relations = rng.choice(TEMPLATES[lang])
    fill = {}
    for label, words in WORDS[lang].items():
        for k, word in enumerate(rng.sample(words, 2)):
            fill[f"{label}{k}"] = word
    words, spans, slots = [], [], {}
    for piece in pieces:
        slot = piece[1:-1] if piece.startswith("{") else None
        piece_words = (fill[slot] if slot else piece).split() if lang == "en" else list(fill[slot] if slot else piece)
        if slot:
            slots[slot] = len(spans)
            spans.append((len(words), len(words) + len(piece_words) - 1, slot[:3]))
        words.extend(piece_words)
    sep = " " if lang == "en" else ""
    tokens, start = [], 0
    for i, word in enumerate(words):
        tokens.append({"text": word, "start": start, "end": start + len(word), "id": i})
        start += len(word) + len(sep)
    text = sep.join(words)
    span_objects = [
        {"start": tokens[a]["start"], "end": tokens[b]["end"], "token_start": a, "token_end": b, "label": label}
        for a, b, label in spans
    ]
    order = sorted(range(len(spans)), key=lambda k: (spans[k][0], spans[k][1]))
    index = {old: new for new, old in enumerate(order)}
    return {
        "text": text,
        "tokens": tokens,
        "spans": [span_objects[k] for k in order],
        "relations": [{"head": index[slots[h]], "child": index[slots[c]], "label": lb} for h, c, lb in relations],
    }


def teach_answer(record: dict, rng: random.Random, prodigy_form: bool) -> dict:
    """One simulated question about a pair of the record's entities, answered by its gold relations."""
    gold = {(r["head"], r["child"], r["label"]) for r in record["relations"]}
    n = len(record["spans"])
    related = sorted({(h, c) for h, c, _ in gold})
    unrelated = [(h, c) for h in range(n) for c in range(n) if h != c and (h, c) not in related]
    head, child = rng.choice(related) if related and rng.random() < 0.5 else rng.choice(unrelated)
    gold_labels = sorted(lb for h, c, lb in gold if (h, c) == (head, child))
    label = rng.choice(gold_labels) if gold_labels and rng.random() < 0.5 else rng.choice(LABELS)
    relation = {"head": head, "child": child, "label": label}
    if prodigy_form:
        head_span, child_span = record["spans"][head], record["spans"][child]
        relation = {
            "head": head_span["token_end"],
            "child": child_span["token_end"],
            "head_span": head_span,
            "child_span": child_span,
            "label": label,
        }
    answer = "accept" if (head, child, label) in gold else "reject"
    return {**{k: record[k] for k in ("text", "tokens", "spans")}, "relations": [relation], "answer": answer}


def unique(lang: str, rng: random.Random, n: int, seen: set) -> list:
    out = []
    while len(out) < n:
        record = make_record(lang, rng)
        if record["text"] not in seen:
            seen.add(record["text"])
            out.append(record)
    return out


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        rng = random.Random(f"rel-{lang}")
        seen: set = set()
        train = unique(lang, rng, N_TEXTS, seen)
        dev = unique(lang, rng, N_DEV, seen)
        answers = [teach_answer(r, rng, prodigy_form=i % 4 == 3) for i, r in enumerate(train)]
        for name, records in ((f"{lang}_answers.jsonl", answers), (f"{lang}_gold_dev.jsonl", dev)):
            with (out_dir / name).open("w", encoding="utf8") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
