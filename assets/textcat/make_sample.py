"""Write the small text-category sample of assets/textcat/: invented Chinese
news titles (4 exclusive categories) and English comments (4 emotions,
multi-label), each as simulated answers (one label per text, the gold label
with probability 0.5, answered accept or reject; every tenth text a choice
answer over all labels) and complete dev annotations. Seeded: running it
again writes the same files.

    python assets/textcat/make_sample.py [OUT_DIR]
"""

import json
import random
import sys
from pathlib import Path

ZH = {
    "news_sports": ["国足", "湖人队", "中超联赛", "羽毛球队", "马拉松比赛", "女排", "世界杯预选赛", "乒乓球名将"],
    "news_finance": ["央行", "人民币汇率", "银行理财", "上市公司年报", "基金经理", "保险公司", "房贷利率", "消费信贷"],
    "news_tech": [
        "新款手机",
        "人工智能芯片",
        "5G网络",
        "开源软件",
        "量子计算机",
        "云计算平台",
        "智能手表",
        "自动驾驶算法",
    ],
    "news_car": ["新能源汽车", "SUV车型", "汽车销量", "电动车电池", "二手车市场", "轿车召回", "车展新车", "混合动力车"],
}
ZH_TAILS = ["最新消息", "引发热议", "发布公告", "迎来新变化", "表现如何？", "今年有哪些看点", "专家怎么看", "数据出炉"]
EN = {
    "joy": ["I am so happy", "this made my day", "what a wonderful surprise party", "I love this so much"],
    "anger": ["this is outrageous", "I am furious about it", "stop lying to everyone", "that makes me so mad"],
    "sadness": ["I miss her every day", "this is heartbreaking", "I feel so alone tonight", "we lost the old dog"],
    "surprise": ["wow I did not expect that", "no way that happened", "I can't believe it", "what a twist"],
}
EN_TAILS = ["honestly", "right now", "to be fair", "again", "today", "lol", "haha", "for real"]
N_TEXTS, N_DEV = 180, 40


def unique(make, n):
    seen, out = set(), []
    while len(out) < n:
        record = make()
        if record["text"] not in seen:
            seen.add(record["text"])
            out.append(record)
    return out


def answers(rng, records, labels):
    out = []
    for i, record in enumerate(records):
        golds = [k for k, v in record["cats"].items() if v]
        if i % 10 == 9:
            options = [{"id": k, "text": k} for k in labels]
            out.append({"text": record["text"], "options": options, "accept": golds, "answer": "accept"})
            continue
        label = rng.choice(golds) if rng.random() < 0.5 else rng.choice([k for k in labels if k not in golds])
        out.append({"text": record["text"], "label": label, "answer": "accept" if label in golds else "reject"})
    return out


def write(path, records):
    with open(path, "w", encoding="utf8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(out: Path) -> None:
    rng = random.Random(0)
    zh_labels = list(ZH)

    def zh_gold():
        label = rng.choice(zh_labels)
        text = rng.choice(ZH[label]) + rng.choice(ZH_TAILS)
        return {"text": text, "cats": {k: float(k == label) for k in zh_labels}}

    zh = unique(zh_gold, N_TEXTS)
    write(out / "zh_answers.jsonl", answers(rng, zh[N_DEV:], zh_labels))
    write(out / "zh_gold_dev.jsonl", zh[:N_DEV])
    en_labels = list(EN)

    def en_gold():
        labels = rng.sample(en_labels, 1 if rng.random() < 0.7 else 2)
        text = ", and ".join(rng.choice(EN[k]) for k in labels).capitalize() + " " + rng.choice(EN_TAILS) + "."
        return {"text": text, "cats": {k: float(k in labels) for k in en_labels}}

    en = unique(en_gold, N_TEXTS)
    write(out / "en_answers.jsonl", answers(rng, en[N_DEV:], en_labels))
    write(out / "en_gold_dev.jsonl", en[:N_DEV])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
