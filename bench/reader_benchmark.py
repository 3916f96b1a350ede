"""How long reading teach answers takes, against spaCy's own `Corpus` reading
the converted `.spacy` file.

    python bench/reader_benchmark.py --gold ../shared/data/msra_zh/train.jsonl.gz --per-sentence 3 --lang zh

Makes simulated teach answers from a gold corpus with `teachsim.py` (or takes
`--decisions FILE`), then times, interleaved, `--repeats` times each, on a fresh
blank pipeline every time:

- reader:  `spacy-binary-ner.TeachCorpus.v1` logic, JSONL -> `Example`s
- convert: JSONL -> `Example`s -> `.spacy` file on disk
- corpus:  spaCy's `Corpus` (`spacy.Corpus.v1`), `.spacy` file -> `Example`s

and prints the medians, and each as a multiple of the corpus time. No result is
asserted: the numbers depend on the machine and on what else runs on it.

srsly looks up its msgpack encoder/decoder registries, entry points included,
on every call, i.e. for every doc with a span group written to or read from a
DocBin; with many packages installed that scan dominates both "convert" and
"corpus". The rows marked "(srsly registries cached)" repeat those two with the
lookups answered from a cache, for this benchmark only, to show the cost
without it.
"""

import argparse
import gc
import gzip
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import spacy
from spacy.training import Corpus

from spacy_binary_ner.convert import convert, format_account
from spacy_binary_ner.data import read_teach_data

ROOT = Path(__file__).resolve().parent.parent
TEACHSIM = ROOT.parent / "shared" / "bench" / "teachsim.py"


def make_decisions(gold: Path, per_sentence: int, seed: int, workdir: Path, teachsim: Path) -> Path:
    if gold.name.endswith(".gz"):  # teachsim reads plain JSONL only
        plain = workdir / gold.name[:-3]
        with gzip.open(gold, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        gold = plain
    out = workdir / f"decisions-{per_sentence}x-{seed}.jsonl"
    subprocess.run(
        [sys.executable, str(teachsim), str(gold), str(out), "--per-sentence", str(per_sentence), "--seed", str(seed)],
        check=True,
    )
    return out


@contextmanager
def cached_srsly_registries() -> Iterator[None]:
    """Answer srsly's msgpack registry lookups from a cache, for this block only."""
    from srsly import msgpack

    registries = (msgpack.msgpack_encoders, msgpack.msgpack_decoders)
    for registry in registries:
        found = registry.get_all()
        registry.get_all = lambda found=found: found  # instance attribute shadows the method
    try:
        yield
    finally:
        for registry in registries:
            del registry.get_all


def with_cached_registries(fn: Callable[[], int]) -> Callable[[], int]:
    def run() -> int:
        with cached_srsly_registries():
            return fn()

    return run


def timed(fn: Callable[[], int]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: List[str] = None) -> Dict[str, List[float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gold", type=Path, help="gold JSONL(.gz) to simulate answers from")
    p.add_argument("--decisions", type=Path, help="teach answers JSONL to use instead of simulating")
    p.add_argument("--per-sentence", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lang", default="zh")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--teachsim", type=Path, default=TEACHSIM)
    p.add_argument("--only", default="", help="comma-separated step numbers to run, e.g. 1,5 (default: all)")
    p.add_argument("--workdir", type=Path, default=None, help="where to keep the decisions and .spacy file")
    args = p.parse_args(argv)
    if not args.gold and not args.decisions:
        p.error("give --gold (to simulate answers) or --decisions")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="reader_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    decisions = args.decisions or make_decisions(args.gold, args.per_sentence, args.seed, workdir, args.teachsim)
    n_records = sum(1 for line in decisions.open(encoding="utf8") if line.strip())
    output = workdir / "decisions.spacy"
    with cached_srsly_registries():  # same file, written faster
        report = convert(spacy.blank(args.lang), [str(decisions)], [], output)
    print(format_account(report))
    n_docs = report["docs"]
    steps = {
        "reader (JSONL -> Examples)": lambda: len(read_teach_data(spacy.blank(args.lang), decisions)[0]),
        "convert (JSONL -> .spacy)": lambda: convert(spacy.blank(args.lang), [str(decisions)], [], output)["docs"],
        "spaCy Corpus (.spacy -> Examples)": lambda: len(list(Corpus(output)(spacy.blank(args.lang)))),
    }
    steps["convert (srsly registries cached)"] = with_cached_registries(steps["convert (JSONL -> .spacy)"])
    steps["spaCy Corpus (srsly registries cached)"] = with_cached_registries(steps["spaCy Corpus (.spacy -> Examples)"])
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        steps = {name: fn for i, (name, fn) in enumerate(steps.items(), 1) if i in keep}
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            times[name].append(timed(fn))
    nan = [float("nan")]
    base = statistics.median(times.get("spaCy Corpus (.spacy -> Examples)") or nan)
    print(
        f"\n{n_records} teach records ({decisions}), {n_docs} examples, {output.stat().st_size / 1e6:.1f} MB .spacy; "
        f"median of {args.repeats}; Python {platform.python_version()}, spaCy {spacy.__version__}, "
        f"{platform.machine()} {platform.processor() or ''}".rstrip()
    )
    cached_base = statistics.median(times.get("spaCy Corpus (srsly registries cached)") or nan)
    print("\n| step | median s | min s | max s | records/s | × spaCy Corpus | × spaCy Corpus (cached) |")
    print("|---|---|---|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | "
            f"{n_records / median:,.0f} | {median / base:.2f} | {median / cached_base:.2f} |"
        )
    print(json.dumps({"records": n_records, "examples": n_docs, "times": times}))
    return times


if __name__ == "__main__":
    main()
