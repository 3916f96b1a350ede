#!/usr/bin/env python3
"""Write the embedded sample, in English and in Chinese (one character per token):

- `{lang}_teach.jsonl`: teach answers to train on, as a person answering a
  model-in-the-loop session would give them (accepts, rejects of wrong labels,
  wrong boundaries and junk spans, a few ignores, and ~2% answered wrongly);
- `{lang}_gold_dev.jsonl`: complete annotations, for `spacy train` to select on;
- `{lang}_gold_eval.jsonl`: complete annotations, for the evaluation report;
- `{lang}_answers_eval.jsonl`: held-out teach answers (no wrong answers), for
  the evaluation's binary accuracy;
- `{lang}_patterns.jsonl`: spaCy EntityRuler patterns for a cold start.

Sentences come from templates and word lists written for this project, so the
sample is ours to ship. Half of the entities in the evaluation sets come from
name lists never used in training, some templates are only used there, and a
few words are entities of different labels in different contexts ("Jordan"),
so the trained model learns visibly without being perfect. Deterministic:
rerunning gives the same files.

    python assets/make_sample.py [OUTPUT_DIR]   # default: this folder
"""

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

HERE = Path(__file__).resolve().parent

# Entity lists: (seen in training, only in evaluation).
EN_ENTITIES: Dict[str, Tuple[List[str], List[str]]] = {
    "PERSON": (
        [
            "Anna Berg",
            "Tomas Lindqvist",
            "Maria Santos",
            "John Okafor",
            "Li Wei",
            "Sara Nilsson",
            "Peter Haas",
            "Fatima Khan",
            "David Cohen",
            "Elena Petrova",
            "Omar Said",
            "Julia Novak",
            "Michael Jordan",
            "Grace Mensah",
            "Kenji Watanabe",
            "Lucia Romero",
            "Ahmed Farouk",
            "Hannah Schmidt",
            "Ivan Horvat",
            "Chloe Martin",
            "Berg",
            "Okafor",
            "Petrova",
            "Jordan",
            "Mr. Haas",
            "Dr. Santos",
            "Ms. Khan",
        ],
        [
            "Nina Kowalski",
            "Rafael Duarte",
            "Aisha Bello",
            "Victor Lund",
            "Mei Chen",
            "Samuel Adeyemi",
            "Kowalski",
            "Dr. Lund",
            "Paul Washington",
            "Jordan Price",
        ],
    ),
    "LOC": (
        [
            "Berlin",
            "Lisbon",
            "Nairobi",
            "Oslo",
            "Toronto",
            "Osaka",
            "Lyon",
            "Krakow",
            "Quito",
            "Perth",
            "Malmo",
            "Porto",
            "Jordan",
            "Kenya",
            "Brazil",
            "Canada",
            "New York",
            "South Africa",
            "the Alps",
            "Lake Victoria",
            "Washington",
            "Hong Kong",
            "Europe",
            "Asia",
        ],
        ["Accra", "Tallinn", "Valencia", "Chile", "Vietnam", "San Diego", "the Andes", "Lagos"],
    ),
    "ORG": (
        [
            "Northwind Bank",
            "Acme Corp",
            "Bluefin Labs",
            "Orbit Airlines",
            "Greenfield University",
            "Harbor Health",
            "Vela Systems",
            "Summit Energy",
            "the United Nations",
            "Reuters",
            "UNICEF",
            "Bank of Lisbon",
            "Toronto Police",
            "Oslo City Council",
            "FC Porto",
            "Red Cross",
            "Kestrel Motors",
            "Apex Media Group",
        ],
        ["Lumen Pharma", "Bank of Accra", "Tallinn Tech", "Crescent Foods", "World Health Organization", "Valencia FC"],
    ),
}
# "Jordan" is a person or a country, "Washington" a place or a surname, "Porto"
# a city inside the club "FC Porto", "Toronto" inside "Toronto Police": the model
# must use the context.
EN_TEMPLATES = [
    "{PERSON} moved to {LOC} last year .",
    "{PERSON} works for {ORG} in {LOC} .",
    "{ORG} opened an office in {LOC} .",
    "Yesterday {PERSON} met {PERSON} at the station .",
    "The report from {ORG} was published on Monday .",
    "{PERSON} said the weather in {LOC} was cold .",
    "Shares of {ORG} rose 3 percent after the news .",
    "We flew from {LOC} to {LOC} in May .",
    "Nothing much happened this week .",
    "{PERSON} joined {ORG} as an engineer .",
    "According to {ORG} , prices in {LOC} fell again .",
    "{PERSON} , a spokesman for {ORG} , declined to comment .",
    '" We are very happy , " said {PERSON} .',
    "{ORG} signed a deal with {ORG} worth 2 million dollars .",
    "The summit in {LOC} ended without an agreement .",
    "{PERSON} scored twice as {ORG} beat {ORG} 3 - 1 .",
    "Heavy rain flooded parts of {LOC} on Tuesday .",
    "{PERSON} told {ORG} that talks would resume in {LOC} .",
    "The new bridge will link {LOC} and {LOC} .",
    "Police arrested two men near the border .",
    "{PERSON} 's book about {LOC} sold well .",
    "Officials from {ORG} visited {LOC} and {LOC} .",
    "In March , {PERSON} became chief executive of {ORG} .",
    "the team will travel to {LOC} next week .",
    "{PERSON} and {PERSON} founded {ORG} in 2004 .",
    "Thousands of tourists visit {LOC} every summer .",
    "{ORG} will cut 500 jobs , {PERSON} said .",
    "Exports from {LOC} to {LOC} doubled in 2019 .",
    "The President thanked {PERSON} for his work .",
    "Monday 's meeting was postponed .",
]
EN_EVAL_ONLY_TEMPLATES = [
    "{PERSON} , who was born in {LOC} , now lives in {LOC} .",
    "A court in {LOC} fined {ORG} on Friday .",
    "{ORG} hired {PERSON} to lead its office in {LOC} .",
    "Fans of {ORG} celebrated late into the night .",
]

ZH_ENTITIES: Dict[str, Tuple[List[str], List[str]]] = {
    "PER": (
        [
            "张伟",
            "王芳",
            "李娜",
            "刘洋",
            "陈静",
            "杨帆",
            "赵磊",
            "黄敏",
            "周杰",
            "吴霞",
            "徐明",
            "孙丽",
            "马超",
            "朱红",
            "胡军",
            "郭涛",
            "林峰",
            "何琳",
            "高勇",
            "罗兰",
            "欧阳明",
            "司徒静",
            "王建国",
            "李秀英",
        ],
        ["郑凯", "冯雪", "韩冰", "唐宁", "宋佳", "许晴", "邓超群", "曹阳"],
    ),
    "LOC": (
        [
            "北京",
            "上海",
            "广州",
            "深圳",
            "成都",
            "杭州",
            "南京",
            "武汉",
            "西安",
            "重庆",
            "天津",
            "苏州",
            "青岛",
            "大连",
            "厦门",
            "长沙",
            "昆明",
            "哈尔滨",
            "内蒙古",
            "美国",
            "日本",
            "德国",
            "法国",
            "英国",
            "长江",
            "黄山",
        ],
        ["合肥", "福州", "兰州", "贵阳", "澳大利亚", "加拿大", "泰山"],
    ),
    "ORG": (
        [
            "华新科技有限公司",
            "东方银行",
            "南山大学",
            "北辰集团",
            "星河电子股份有限公司",
            "长江证券",
            "明德中学",
            "中华医学会",
            "清源律师事务所",
            "蓝海航空",
            "天元投资公司",
            "新民日报社",
            "成都第一中学",
            "杭州市人民医院",
            "上海华新科技有限公司",
            "北京南山大学",
            "深圳星河电子",
            "国家统计局",
        ],
        ["金桥物流有限公司", "远航软件", "青松医院", "北岸大学", "合肥光明电器厂", "福州海峡银行"],
    ),
}
# ORG names that contain a place (成都第一中学) are one ORG: flat entities.
ZH_TEMPLATES = [
    "{PER}，男，{YEAR}年出生，{LOC}国籍，无境外永久居留权。",
    "{PER}，女，{YEAR}年出生，本科学历。",
    "{PER}毕业于{ORG}，获硕士学位。",
    "{PER}现任{ORG}董事长。",
    "{ORG}总部位于{LOC}。",
    "{PER}曾在{LOC}工作多年。",
    "{PER}和{PER}在{LOC}见面。",
    "{ORG}今年在{LOC}开设了新的分公司。",
    "据{ORG}消息，{LOC}的气温明显下降。",
    "今天的会议由{PER}主持。",
    "本公司的注册地址在{LOC}。",
    "{PER}于{YEAR}年加入{ORG}，担任工程师。",
    "他从{LOC}坐飞机到{LOC}。",
    "这个问题还没有答案。",
    "{ORG}发布了第三季度财报。",
    "{PER}说{LOC}的冬天很冷。",
    "{PER}先生是{ORG}的创始人之一。",
    "{YEAR}年至今任{ORG}副总经理。",
    "{ORG}与{ORG}签署了合作协议。",
    "游客们在{LOC}拍了很多照片。",
    "{PER}教授在{ORG}做了一场报告。",
    "历任{ORG}技术员、{ORG}部门经理。",
    "明天{LOC}有大雨。",
    "{PER}表示，公司将继续扩大在{LOC}的投资。",
]
ZH_EVAL_ONLY_TEMPLATES = [
    "{PER}出生于{LOC}，现居{LOC}。",
    "{LOC}法院对{ORG}处以罚款。",
    "{ORG}聘请{PER}担任首席执行官。",
]


def fill(rng: random.Random, template: str, lang: str, entities: Dict[str, List[str]]) -> dict:
    """A record with text, tokens (whitespace words, or characters for zh) and gold spans."""
    words, spans = [], []  # spans as token offsets [start, end)
    parts = template.split() if lang == "en" else _zh_parts(template)
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            label = part[1:-1]
            if label == "YEAR":
                words.extend(list(str(rng.randrange(1955, 2000))))
                continue
            value = rng.choice(entities[label])
            value_words = value.split() if lang == "en" else list(value)
            spans.append((len(words), len(words) + len(value_words), label))
            words.extend(value_words)
        else:
            words.extend([part] if lang == "en" else list(part))
    sep = " " if lang == "en" else ""
    tokens, pos = [], 0
    for i, w in enumerate(words):
        tokens.append({"text": w, "start": pos, "end": pos + len(w), "id": i, "ws": bool(sep)})
        pos += len(w) + len(sep)
    tokens[-1]["ws"] = False
    text = sep.join(words)
    gold = [
        {"start": tokens[s]["start"], "end": tokens[e - 1]["end"], "token_start": s, "token_end": e - 1, "label": lab}
        for s, e, lab in spans
    ]
    return {"text": text, "tokens": tokens, "spans": gold}


def _zh_parts(template: str) -> List[str]:
    parts, rest = [], template
    while rest:
        i = rest.find("{")
        if i == -1:
            parts.append(rest)
            break
        if i:
            parts.append(rest[:i])
        j = rest.index("}", i)
        parts.append(rest[i : j + 1])
        rest = rest[j + 1 :]
    return parts


def teach(rng: random.Random, record: dict, labels: Sequence[str], noise: float) -> List[dict]:
    """One to three questions about the sentence, as a model-in-the-loop session
    would ask them, answered by a careful person who is wrong `noise` of the time."""
    out = []
    n_tokens = len(record["tokens"])
    gold = {(s["token_start"], s["token_end"], s["label"]) for s in record["spans"]}
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        r = rng.random()
        if record["spans"] and r < 0.65:
            s = rng.choice(record["spans"])
            start, end, label = s["token_start"], s["token_end"], s["label"]
            if r < 0.15:  # right span, wrong label
                label = rng.choice([other for other in labels if other != label])
            elif r < 0.25:  # wrong boundary
                start, end = _shift(rng, start, end, n_tokens)
        else:  # a span the model proposed in the wrong place
            start = rng.randrange(n_tokens)
            end = min(n_tokens - 1, start + rng.choice([0, 0, 1, 2]))
            label = rng.choice(labels)
        if rng.random() < 0.05:
            answer = "ignore"
        else:
            answer = "accept" if (start, end, label) in gold else "reject"
            if rng.random() < noise:
                answer = "reject" if answer == "accept" else "accept"
        tokens = record["tokens"]
        span = {
            "start": tokens[start]["start"],
            "end": tokens[end]["end"],
            "token_start": start,
            "token_end": end,
            "label": label,
        }
        out.append({"text": record["text"], "tokens": tokens, "spans": [span], "answer": answer})
    return out


def _shift(rng: random.Random, start: int, end: int, n_tokens: int) -> Tuple[int, int]:
    moves = []
    if start > 0:
        moves.append((start - 1, end))
    if end + 1 < n_tokens:
        moves.append((start, end + 1))
    if end > start:
        moves.extend([(start + 1, end), (start, end - 1)])
    return rng.choice(moves) if moves else (start, end)


def patterns(lang: str, entities: Dict[str, Tuple[List[str], List[str]]], per_label: int) -> List[dict]:
    """Cold-start patterns: the first `per_label` training names of each label.
    English as token patterns on the lower-cased form, Chinese as phrases."""
    out = []
    for label, (seen, _) in entities.items():
        for name in seen[:per_label]:
            if lang == "en":
                out.append({"label": label, "pattern": [{"LOWER": w.lower()} for w in name.split()]})
            else:
                out.append({"label": label, "pattern": name})
    if lang == "en":
        # A shape pattern: a capitalised word followed by a company word.
        out.append({"label": "ORG", "pattern": [{"IS_TITLE": True}, {"LOWER": {"IN": ["bank", "corp", "labs"]}}]})
    return out


def draw_unseen(
    rng: random.Random, templates: Sequence[str], lang: str, entities: Dict[str, List[str]], n: int, taken: set
) -> List[dict]:
    """`n` records whose texts are not in `taken` nor repeated; adds their texts to `taken`."""
    out = []
    for _ in range(n * 100):
        if len(out) == n:
            break
        record = fill(rng, rng.choice(templates), lang, entities)
        if record["text"] not in taken:
            taken.add(record["text"])
            out.append(record)
    if len(out) < n:
        raise ValueError(f"{lang}: only {len(out)} of {n} new sentences after {n * 100} draws; add templates or names")
    return out


def write_jsonl(path: Path, records: List[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def make(
    lang: str,
    entities,
    templates,
    eval_templates,
    n_train: int,
    n_dev: int,
    n_eval: int,
    n_answers: int,
    seed: int,
    out: Path = HERE,
) -> None:
    rng = random.Random(seed)
    labels = list(entities)
    seen = {label: pools[0] for label, pools in entities.items()}
    # Evaluation sentences draw each entity from the unseen list half of the time.
    mixed = {
        label: pools[0] + pools[1] * max(1, len(pools[0]) // max(1, len(pools[1]))) for label, pools in entities.items()
    }
    train = [fill(rng, rng.choice(templates), lang, seen) for _ in range(n_train)]
    answers = [task for record in train for task in teach(rng, record, labels, noise=0.02)]
    all_templates = templates + eval_templates
    # No text is in two of the files: the reported F1 is on sentences never trained on.
    taken = {record["text"] for record in train}
    dev = draw_unseen(rng, all_templates, lang, mixed, n_dev, taken)
    gold_eval = draw_unseen(rng, all_templates, lang, mixed, n_eval, taken)
    held_out = draw_unseen(rng, all_templates, lang, mixed, n_answers, taken)
    held_out_answers = [task for record in held_out for task in teach(rng, record, labels, noise=0.0)]
    write_jsonl(out / f"{lang}_teach.jsonl", answers)
    write_jsonl(out / f"{lang}_gold_dev.jsonl", dev)
    write_jsonl(out / f"{lang}_gold_eval.jsonl", gold_eval)
    write_jsonl(out / f"{lang}_answers_eval.jsonl", held_out_answers)
    write_jsonl(out / f"{lang}_patterns.jsonl", patterns(lang, entities, per_label=8))
    counts = {a: sum(t["answer"] == a for t in answers) for a in ("accept", "reject", "ignore")}
    print(
        f"{lang}: {len(train)} teach sentences, {len(answers)} answers {counts}; gold dev {len(dev)}, "
        f"gold eval {len(gold_eval)}, held-out answers {len(held_out_answers)}"
    )


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description="Write the embedded sample (teach answers, gold dev/eval, patterns).")
    parser.add_argument("out", nargs="?", type=Path, default=HERE, help="folder to write to (default: assets/)")
    out = parser.parse_args(argv).out
    make("en", EN_ENTITIES, EN_TEMPLATES, EN_EVAL_ONLY_TEMPLATES, 500, 60, 150, 150, seed=0, out=out)
    make("zh", ZH_ENTITIES, ZH_TEMPLATES, ZH_EVAL_ONLY_TEMPLATES, 500, 60, 150, 150, seed=1, out=out)


if __name__ == "__main__":
    main(sys.argv[1:])
