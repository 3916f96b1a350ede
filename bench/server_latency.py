"""Teach server benchmark: answer → next question latency, answers stored per
second, and the README's resume_zh simulation driven through HTTP.

Runs `python -m spacy_binary_ner teach` as a subprocess on 127.0.0.1 and
talks to it with the HTTP-only oracle client (`spacy_binary_ner.server.client`).

    # latency: 1 session, then 20 concurrent sessions (a new server each), three runs
    python bench/server_latency.py latency --pool ../shared/data/msra_zh/train.jsonl.gz \
        --config configs/zh_cnn.cfg --answers 50 --think 0.5 --runs 3 --output bench/results/server-latency-fresh.json
    # the same right after a restart with 1,000 stored answers to re-learn
    python bench/server_latency.py latency ... --sessions 20 --restart-answers 1000 \
        --output bench/results/server-latency-restart.json
    # the README's simulation (2,000 decisions) through HTTP, beside `simulate` in the same run
    nice -n 10 python bench/server_latency.py simulate --pool ../shared/data/resume_zh/train.jsonl \
        --test ../shared/data/resume_zh/test.jsonl --patterns resume_patterns.jsonl \
        --config configs/zh_cnn.cfg --output bench/results/server_simulation.json

Prints a table; writes the numbers as JSON.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spacy_binary_ner.server.client import TeachClient, gold_by_text, oracle_answer, run_oracle  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workdir: Path, args: List[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.argv = [sys.executable, "-m", "spacy_binary_ner", "teach", *args, "--port", str(self.port)]

    def __enter__(self) -> "Server":
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.setdefault("OMP_NUM_THREADS", "1")
        self.log = open(self.workdir / "server.log", "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "server.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(self.url + "/api/info", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def __exit__(self, *args: Any) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def percentile(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def write_source(records: List[Dict[str, Any]], path: Path, seed: int) -> None:
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    with path.open("w", encoding="utf8") as f:
        for i in order:
            task = {"text": records[i]["text"], "meta": {"pool_index": i}}
            if records[i].get("tokens"):
                task["tokens"] = records[i]["tokens"]
            f.write(json.dumps(task, ensure_ascii=False) + "\n")


def session_run(
    url: str,
    name: str,
    n: int,
    gold,
    think: float,
    latencies: List[float],
    errors: List[str],
    refills: List[int],
) -> None:
    client = TeachClient(url, session=name)
    try:
        tasks = client.questions(1)
        for i in range(n):
            if not tasks:
                errors.append(f"{name}: no question after {i}")
                return
            task = dict(tasks[0], answer=oracle_answer(tasks[0], gold), key=f"{name}-{i}")
            if think:
                time.sleep(think)
            begin = time.perf_counter()
            tasks = client.answer([task], next_n=1).get("tasks", [])
            latencies.append(time.perf_counter() - begin)
            if not tasks:
                # Not counted: the queue ran dry (reported as "refills").
                refills.append(1)
                tasks = client.questions(1)
    except Exception as err:
        errors.append(f"{name}: {type(err).__name__}: {err}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _teach_args(args: argparse.Namespace, workdir: Path, labels: List[str], dataset: str = "bench") -> List[str]:
    return [
        dataset,
        str(args.config.resolve()),
        str(workdir / "source.jsonl"),
        "--label",
        ",".join(labels),
        "--db",
        str(workdir / "db.sqlite3"),
        "--output",
        str(workdir / "out"),
        "--save-every",
        "0",
        "--queue-size",
        str(args.queue_size),
    ]


def _stored_then_killed(workdir: Path, argv: List[str], gold, n: int) -> None:
    """Store `n` answers, then kill -9 the server: a restart re-learns them all
    (no model was saved)."""
    with Server(workdir, argv) as server:
        run_oracle(TeachClient(server.url, session="before"), gold, n, batch_size=10)
        server.proc.kill()
        server.proc.wait()


def latency(args: argparse.Namespace) -> Dict[str, Any]:
    from spacy_binary_ner.data import iter_jsonl

    records = list(iter_jsonl(args.pool))
    labels = sorted({s["label"] for r in records for s in r.get("spans", [])})
    gold = gold_by_text(records)
    results: Dict[str, Any] = {}
    for sessions in args.sessions:
        per_session = args.answers
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            write_source(records, workdir / "source.jsonl", args.seed)
            teach_args = _teach_args(args, workdir, labels)
            if args.restart_answers:
                _stored_then_killed(workdir, teach_args, gold, args.restart_answers)
            load_before = _load()
            with Server(workdir, teach_args) as server:
                if not args.restart_answers:
                    # Warm up: the first updates, so that updates run during the measurement.
                    run_oracle(TeachClient(server.url, session="warmup"), gold, 30)
                relearning = TeachClient(server.url).progress().get("relearning")
                latencies: List[float] = []
                errors: List[str] = []
                refills: List[int] = []
                threads = [
                    threading.Thread(
                        target=session_run,
                        args=(server.url, f"s{i}", per_session, gold, args.think, latencies, errors, refills),
                    )
                    for i in range(sessions)
                ]
                begin = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - begin
                progress = TeachClient(server.url).progress()
            results[f"{sessions} sessions"] = {
                "answers": len(latencies),
                "p50_ms": round(1000 * statistics.median(latencies), 1),
                "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
                "max_ms": round(1000 * max(latencies), 1),
                "answers_per_s": round(len(latencies) / wall, 1),
                "refills": len(refills),
                "updates": progress["updates"],
                "learned": progress["learned"],
                "relearning_at_start": relearning,
                "load_average": f"{load_before} -> {_load()}",
                "errors": errors[:5],
            }
            print(f"{sessions} sessions: {results[f'{sessions} sessions']}", file=sys.stderr, flush=True)
    return results


def _markdown(runs: List[Dict[str, Any]], command: str) -> str:
    lines = [
        f"`{command}`",
        "",
        "| run | sessions | answers | p50 ms | p95 ms | max ms | answers/s | refills | load average (1, 5, 15 min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        for name, r in run.items():
            lines.append(
                f"| {i} | {name.split()[0]} | {r['answers']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | "
                f"{r['answers_per_s']} | {r['refills']} | {r['load_average']} |"
            )
    for name in runs[0]:
        p95 = statistics.median(run[name]["p95_ms"] for run in runs)
        p50 = statistics.median(run[name]["p50_ms"] for run in runs)
        lines.append(f"\nMedian of {len(runs)} runs, {name}: p50 {p50} ms, p95 {p95} ms.")
    return "\n".join(lines) + "\n"


def simulate(args: argparse.Namespace) -> Dict[str, Any]:
    import spacy

    from spacy_binary_ner.data import iter_jsonl, records_to_examples

    records = list(iter_jsonl(args.pool))
    labels = sorted({s["label"] for r in records for s in r.get("spans", [])})
    gold = gold_by_text(records)
    out: Dict[str, Any] = {"decisions": args.budget}
    settings = ["--replay", "20", "--pattern-lookahead", "4000", "--pattern-max-answers", "5", "--seed", str(args.seed)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_simulate:
            begin = time.perf_counter()
            cmd = [
                sys.executable,
                "-m",
                "spacy_binary_ner",
                "simulate",
                "--pool",
                str(args.pool.resolve()),
                "--test",
                str(args.test.resolve()),
                "--patterns",
                str(args.patterns.resolve()),
                "--strategy",
                "uncertainty",
                "--batch-size",
                "10",
                "--budget",
                str(args.budget),
                "--eval-every",
                str(args.budget),
                "--lang",
                "zh",
                "--config",
                str(args.config.resolve()),
                "--learn-rate",
                "0.005",
                "--output",
                str(workdir / "sim"),
                "--no-progress",
                *settings,
            ]
            subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            point = [json.loads(line) for line in (workdir / "sim" / "curve.jsonl").open()][-1]
            out["simulate"] = {
                "test_f": round(point["f"], 4),
                "accepts": point["accepts"],
                "seconds": round(time.perf_counter() - begin, 1),
            }
            print(f"simulate: {out['simulate']}", file=sys.stderr, flush=True)
        write_source(records, workdir / "source.jsonl", args.seed)
        teach_args = [
            *_teach_args(args, workdir, labels, dataset="sim"),
            "--patterns",
            str(args.patterns.resolve()),
            "--batch-size",
            "10",
            *settings,
        ]
        begin = time.perf_counter()
        with Server(workdir, teach_args) as server:
            client = TeachClient(server.url, session="oracle", timeout=600)
            given = run_oracle(client, gold, args.budget, batch_size=10)
            deadline = time.monotonic() + 600
            while client.progress()["learned"] < given and time.monotonic() < deadline:
                time.sleep(0.2)
            progress = client.progress()
        # The server saved the model on shutdown (the weights it proposes with).
        nlp = spacy.load(workdir / "out" / "model")
        test = records_to_examples(nlp, list(iter_jsonl(args.test)), complete=True)
        scores = nlp.evaluate(test)
        out["http"] = {
            "test_f": round(scores["ents_f"], 4),
            "answers": given,
            "accepts": round((progress["accept_rate"] or 0) * given),
            "learned": progress["learned"],
            "updates": progress["updates"],
            "seconds": round(time.perf_counter() - begin, 1),
            "threshold": nlp.get_pipe("binary_ner").cfg["threshold"],
        }
        print(f"http: {out['http']}", file=sys.stderr, flush=True)
    if "simulate" in out:
        out["difference"] = round(out["http"]["test_f"] - out["simulate"]["test_f"], 4)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["latency", "simulate"])
    p.add_argument("--pool", type=Path, required=True)
    p.add_argument("--test", type=Path, default=None)
    p.add_argument("--patterns", type=Path, default=None)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "zh_cnn.cfg")
    p.add_argument("--answers", type=int, default=100, help="answers per session in the latency run")
    p.add_argument("--sessions", type=int, nargs="+", default=[1, 20], help="concurrent sessions of each latency run")
    p.add_argument("--think", type=float, default=0.0, help="seconds each session waits before answering")
    p.add_argument("--budget", type=int, default=2000)
    p.add_argument("--queue-size", type=int, default=None, help="teach --queue-size (latency 20, simulate 10)")
    p.add_argument("--runs", type=int, default=1, help="latency runs, each with a new server")
    p.add_argument(
        "--restart-answers",
        type=int,
        default=0,
        help="latency right after a restart: store this many answers, kill -9 the server, measure the restarted one",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-simulate", action="store_true")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    if args.queue_size is None:
        args.queue_size = 20 if args.what == "latency" else 10
    if args.what == "simulate" and (args.test is None or args.patterns is None):
        p.error("simulate needs --test and --patterns")
    command = " ".join(sys.argv)
    if args.what == "latency":
        runs = [latency(args) for _ in range(args.runs)]
        result: Dict[str, Any] = {f"run {i}": run for i, run in enumerate(runs, 1)}
    else:
        result = simulate(args)
    result["command"] = command
    print(json.dumps(result, indent=2))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        if args.what == "latency":
            args.output.with_suffix(".md").write_text(_markdown(runs, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
