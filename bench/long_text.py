"""Time and peak memory of `nlp(text)` on one long text, by length.

    nice -n 10 python bench/long_text.py --sizes 100000,300000,1000000 [--lang zh] [--whole 100000]

Each size runs in a fresh process (peak RSS is per process): a blank pipeline
with `binary_ner`'s default model (labels PER, LOC, ORG, initialized, not
trained) scores one text of that many characters, made of short sentences
repeated. `--whole` sizes run the same with the model's inference windows off
(one call on the whole doc), for comparison. Prints a table; asserts nothing.
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from typing import List

SENTENCES = {
    "zh": [
        "高勇在北京大学读书。",
        "他说中国银行今天开门！",
        "李明和王芳去了上海？",
        "这家公司成立于一九九八年，总部在深圳。",
    ],
    "en": ["Anna flew to Paris today. ", "The Bank of England said rates stay! ", "Did Omar meet Lena in Rome? "],
}


def make_text(lang: str, n_chars: int) -> str:
    out: List[str] = []
    size = k = 0
    while size < n_chars:
        sentence = SENTENCES[lang][k % len(SENTENCES[lang])]
        out.append(sentence)
        size += len(sentence)
        k += 1
    return "".join(out)[:n_chars]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(lang: str, n_chars: int, whole: bool) -> None:
    import spacy
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank(lang)
    pipe = nlp.add_pipe("binary_ner")
    for label in ("PER", "LOC", "ORG"):
        pipe.add_label(label)
    nlp.initialize()
    if whole:
        pipe.model.attrs["window"] = 10**9
    text = make_text(lang, n_chars)
    nlp(text[:2000])  # warm up
    before = rss_mb()
    start = time.perf_counter()
    doc = nlp(text)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"chars": len(text), "tokens": len(doc), "seconds": seconds, "peak_mb": rss_mb(), "before_mb": before}
        )
    )


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100000,300000,1000000", help="text lengths in characters, comma-separated")
    p.add_argument("--whole", default="", help="lengths to run also with the inference windows off")
    p.add_argument("--lang", default="zh", choices=sorted(SENTENCES))
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--whole-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.lang, args.child, args.whole_child)
        return 0
    runs = [(int(n), False) for n in args.sizes.split(",") if n]
    runs += [(int(n), True) for n in args.whole.split(",") if n]
    print(f"Python {platform.python_version()}, {platform.machine()}, lang {args.lang}, one process per row")
    print("\n| characters | tokens | windows | seconds | s per 100k chars | peak RSS MB | RSS before nlp() MB |")
    print("|---|---|---|---|---|---|---|")
    for n_chars, whole in runs:
        cmd = [sys.executable, __file__, "--lang", args.lang, "--child", str(n_chars)] + (
            ["--whole-child"] if whole else []
        )
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {n_chars:,} | | {'off' if whole else 'on'} | failed (exit {done.returncode}) | | | |")
            print(done.stderr[-2000:], file=sys.stderr)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {r['chars']:,} | {r['tokens']:,} | {'off' if whole else 'on'} | {r['seconds']:.1f} | "
            f"{100000 * r['seconds'] / r['chars']:.2f} | {r['peak_mb']:,.0f} | {r['before_mb']:,.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
