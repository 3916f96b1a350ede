"""Corpus annotate and select at scale: docs/s and peak memory of each engine.

    python bench/corpus_benchmark.py annotate --data /work/shared/data/resume_zh --texts 75000 --work /tmp/cb
    python bench/corpus_benchmark.py select --data /work/shared/data --pool 1000000 --n 1000 --work /tmp/cb

`annotate` trains the shipped configs/zh_cnn.cfg model (or `--model small`) briefly (speed does not
depend on how well it is trained), writes resume_zh train texts repeated to
`--texts` lines, and runs `python -m spacy_binary_ner annotate` with local
n_process=1, local 2 processes and Ray with 2 workers, one after the other in
this run; `select` generates a pool of distinct texts from pieces of the
msra_zh and resume_zh sentences and runs `select` on the local engine and on Ray.
Each run is a fresh subprocess, timed end to end (pipeline loading and Ray
start-up included). Its memory is sampled every 0.5 s over its process tree
(the command, its pool workers, and with Ray its daemons: gcs_server, raylet,
dashboard, monitor, log monitor, their agents, and the actors, which are the
raylet's children): the peak of the summed resident memory (RSS, which counts
a shared library once per process that maps it) and of the summed
proportional set size (PSS, which shares those pages out: the memory the run
takes from the machine). Prints tables, asserts nothing.
"""

import argparse
import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import spacy
from spacy.util import fix_random_seed, load_config

from spacy_binary_ner.data import records_to_examples

ROOT = Path(__file__).resolve().parent.parent
SMALL_MODEL = {
    "@architectures": "spacy-binary-ner.SpanScorer.v1",
    "hidden_width": 32,
    "max_span_length": 8,
    "lstm_width": 32,
    "lstm_depth": 1,
    "dropout": 0.0,
    "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": 32,
            "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
            "rows": [2000, 500, 500, 500],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": 32,
            "depth": 2,
            "window_size": 1,
            "maxout_pieces": 2,
        },
    },
}


MODELS = {"zh_cnn": "configs/zh_cnn.cfg", "small": "small binary_ner (width 32, spans <= 8 chars)"}


def read_records(path: Path) -> List[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_pipeline(train: List[dict], out: Path, model: str, steps: int, candidates_threshold: float = 0.05) -> Path:
    """A zh binary_ner (char tokens) trained `steps` updates of 32 complete
    records, or the one an earlier run saved at `out`."""
    if (out / "meta.json").exists():
        return out
    fix_random_seed(0)
    nlp = spacy.blank(
        "zh", config={"nlp": {"tokenizer": {"@tokenizers": "spacy.zh.ChineseTokenizer", "segmenter": "char"}}}
    )
    if model == "zh_cnn":
        cfg = dict(load_config(ROOT / "configs" / "zh_cnn.cfg", interpolate=True)["components"]["binary_ner"])
        cfg.pop("factory")
    else:
        cfg = {"model": SMALL_MODEL}
    cfg["candidates_threshold"] = candidates_threshold
    nlp.add_pipe("binary_ner", config=cfg)
    records = [{k: r[k] for k in ("text", "spans") if k in r} for r in train[:256]]
    examples = records_to_examples(nlp, records, complete=True)
    optimizer = nlp.initialize(lambda: examples)
    for step in range(steps):
        nlp.update(examples[(step * 32) % len(examples) :][:32], sgd=optimizer)
    nlp.to_disk(out)
    return out


def _kb(path: str, field: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def tree_memory(pid: int) -> Tuple[int, int, int]:
    """(summed RSS bytes, summed PSS bytes, number of processes) of a process
    and all its descendants."""
    rss = pss = count = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            rss += _kb(f"/proc/{p}/status", "VmRSS:") * 1024
            pss += _kb(f"/proc/{p}/smaps_rollup", "Pss:") * 1024
            count += 1
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss, count


def timed_run(cmd: List[str], log: Path) -> Tuple[float, Tuple[int, int, int], int]:
    """(wall seconds, peaks of tree_memory, return code) of a command."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = [0, 0, 0]

        def sample() -> None:
            while proc.poll() is None:
                for k, value in enumerate(tree_memory(proc.pid)):
                    peak[k] = max(peak[k], value)
                time.sleep(0.5)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        rc = proc.wait()
        wall = time.perf_counter() - start
        thread.join()
    return wall, (peak[0], peak[1], peak[2]), rc


def memory_columns(peak: Tuple[int, int, int]) -> Dict[str, str]:
    return {
        "peak RSS sum MB": f"{peak[0] / 2**20:,.0f}",
        "peak PSS sum MB": f"{peak[1] / 2**20:,.0f}",
        "procs": str(peak[2]),
    }


def digest_folder(folder: Path) -> str:
    """A hash of every output record, whatever the shard order."""
    lines = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf8") as f:
            lines.extend(f)
    return hashlib.sha1("".join(sorted(lines)).encode("utf8")).hexdigest()[:12]


def cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "spacy_binary_ner", *map(str, args)]


def print_table(rows: List[Dict[str, str]]) -> None:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in keys))


def bench_annotate(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    train = read_records(Path(args.data) / "train.jsonl")
    pipeline = train_pipeline(train, work / f"pipeline-{args.model}-{args.steps}", args.model, args.steps)
    corpus = work / "corpus75k"
    corpus.mkdir(exist_ok=True)
    with open(corpus / "texts.jsonl", "w", encoding="utf8") as f:
        for i in range(args.texts):
            f.write(json.dumps({"text": train[i % len(train)]["text"], "id": i}, ensure_ascii=False) + "\n")
    runs = [("local n_process=1", "local", 1), ("local 2 processes", "local", 2), ("ray 2 workers", "ray", 2)]
    rows, walls = [], {}
    for name, engine, workers in runs:
        out = work / f"annotate-{engine}-{workers}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        cmd = cli(
            "annotate",
            pipeline,
            corpus,
            out,
            "--engine",
            engine,
            "--workers",
            workers,
            "--shard-size",
            args.shard_size,
            "--batch-size",
            args.batch_size,
        )
        load = os.getloadavg()[0]
        wall, peak, rc = timed_run(cmd, work / f"annotate-{engine}-{workers}.log")
        walls[name] = wall
        rows.append(
            {
                "engine": name,
                "rc": str(rc),
                "load": f"{load:.1f}",
                "texts": f"{args.texts:,}",
                "wall s": f"{wall:.1f}",
                "docs/s": f"{args.texts / wall:,.0f}",
                **memory_columns(peak),
                "output": digest_folder(out) if rc == 0 else "-",
            }
        )
        print(f"done: {name} in {wall:.1f}s", file=sys.stderr, flush=True)
    base = walls["local n_process=1"]
    for row, (name, _, _) in zip(rows, runs):
        row["x n_process=1"] = f"{base / walls[name]:.2f}"
    print(
        f"\nannotate: {args.texts:,} resume_zh train texts (repeated), model {MODELS[args.model]} "
        f"({args.steps} steps), "
        f"shard size {args.shard_size}, batch {args.batch_size}; {os.cpu_count()} cores; "
        f"load = 1-min load average when the run started"
    )
    print_table(rows)


def pool_texts(data: Path, n: int) -> List[str]:
    """n distinct texts: a piece of one msra_zh / resume_zh sentence joined to a
    piece of another."""
    sents = [r["text"] for r in read_records(data / "msra_zh" / "train.jsonl.gz")]
    sents += [r["text"] for r in read_records(data / "resume_zh" / "train.jsonl")]
    sents = [s for s in sents if len(s) >= 8]
    S = len(sents)
    seen, texts, i = set(), [], 0
    while len(texts) < n:
        a, b = sents[i % S], sents[(i * 7919 + i // S) % S]
        text = a[: 12 + i % 13] + "，" + b[: 6 + (i // 7) % 9]
        i += 1
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def bench_select(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    train = read_records(data / "resume_zh" / "train.jsonl")
    # Every span from p = 0.01 a candidate, so that the pool has spans near
    # 0.5 to choose from.
    pipeline = train_pipeline(
        train, work / f"select-{args.model}-{args.steps}", args.model, args.steps, candidates_threshold=0.01
    )
    pool = work / f"pool{args.pool}"
    if not (pool / "done").exists():
        pool.mkdir(exist_ok=True)
        texts = pool_texts(data, args.pool)
        per_file = -(-len(texts) // args.files)
        for k in range(args.files):
            with open(pool / f"pool-{k:03d}.jsonl", "w", encoding="utf8") as f:
                for j, text in enumerate(texts[k * per_file : (k + 1) * per_file]):
                    f.write(json.dumps({"text": text, "id": k * per_file + j}, ensure_ascii=False) + "\n")
        (pool / "done").write_text("")
        del texts
    rows, tops = [], {}
    for name, engine in (("local 2 processes", "local"), ("ray 2 workers", "ray")):
        out = work / f"select-{engine}.jsonl"
        subprocess.run(["rm", "-rf", str(out), f"{out}.parts", f"{out}.account.json"], check=True)
        cmd = cli(
            "select",
            pipeline,
            pool,
            out,
            "--n",
            args.n,
            "--engine",
            engine,
            "--workers",
            "2",
            "--shard-size",
            args.shard_size,
            "--batch-size",
            args.batch_size,
        )
        load = os.getloadavg()[0]
        wall, peak, rc = timed_run(cmd, work / f"select-{engine}.log")
        tops[name] = set()
        if rc == 0:
            with open(out, encoding="utf8") as f:
                tops[name] = {json.loads(line)["_task_hash"] for line in f}
        rows.append(
            {
                "engine": name,
                "rc": str(rc),
                "load": f"{load:.1f}",
                "pool": f"{args.pool:,}",
                "N": str(args.n),
                "wall s": f"{wall:.1f}",
                "docs/s": f"{args.pool / wall:,.0f}",
                **memory_columns(peak),
                "selected": str(len(tops[name])),
            }
        )
        print(f"done: {name} in {wall:.1f}s", file=sys.stderr, flush=True)
    a, b = tops.values()
    print(
        f"\nselect: pool of {args.pool:,} generated zh texts in {args.files} files, model {MODELS[args.model]} "
        f"({args.steps} steps, candidates from p = 0.01), uncertainty, shard size {args.shard_size}; "
        f"{os.cpu_count()} cores; load = 1-min load average when the run started"
    )
    print_table(rows)
    print(f"same top-{args.n} set on both engines: {a == b and len(a) == args.n} (overlap {len(a & b)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("annotate")
    p.add_argument("--data", default="/work/shared/data/resume_zh")
    p.add_argument("--texts", type=int, default=75000)
    p.add_argument("--model", choices=sorted(MODELS), default="zh_cnn")
    p.add_argument("--shard-size", type=int, default=2500)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--work", default="/tmp/corpus_bench")
    p = sub.add_parser("select")
    p.add_argument("--data", default="/work/shared/data")
    p.add_argument("--pool", type=int, default=1000000)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--model", choices=sorted(MODELS), default="zh_cnn")
    p.add_argument("--shard-size", type=int, default=25000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--work", default="/tmp/corpus_bench")
    args = parser.parse_args()
    (bench_annotate if args.what == "annotate" else bench_select)(args)


if __name__ == "__main__":
    main()
