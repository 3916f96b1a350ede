#!/usr/bin/env python3
"""Benchmark: binary_ner against spaCy's ner and beam_ner, trained on the same
teach answers, evaluated on a gold test split. Protocol: ../shared/bench/README.md.

    python bench/binary_benchmark.py --data ../shared/data/resume_zh --decisions teach-1x

Systems (all with the same CNN tok2vec: the config's, after --set; the same optimizer, batcher and step budget):
  binary_ner        ours, on the decisions
  ner               spaCy ner + incorrect_spans_key, on the decisions
  beam_ner          spaCy beam_ner + incorrect_spans_key, on the decisions
  binary_ner_gold   ours, on the complete gold annotation of the training split (ceiling)
  ner_gold          spaCy ner, likewise

Writes <out>/<name>.json and <out>/<name>.md and prints the Markdown table.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional

import spacy
import srsly
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_nlp
from spacy.util import load_config, registry

from spacy_binary_ner.data import iter_jsonl, records_to_examples
from spacy_binary_ner.ops import use_cpu_ops
from spacy_binary_ner.simulate import spacy_peer_components
from spacy_binary_ner.threshold import best_threshold, bootstrap_wins, choose_threshold, scores_at_thresholds

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCH = REPO.parent / "shared" / "bench"
SYSTEMS = ["binary_ner", "ner", "beam_ner", "binary_ner_gold", "ner_gold"]
DECISIONS = {"teach-1x": 1, "teach-3x": 3}


class Timeline:
    """Records (step, dev score, seconds) at each evaluation, via a spaCy logger."""

    points: List[Dict] = []
    start = 0.0


@registry.loggers("binary_ner_bench.TimelineLogger.v1")
def timeline_logger():
    def setup(nlp, stdout=sys.stdout, stderr=sys.stderr):
        Timeline.points = []
        Timeline.start = time.perf_counter()

        def log_step(info: Optional[Dict]):
            if info is None or info.get("score") is None:
                return
            point = {
                "step": info["step"],
                "score": float(info["score"]),
                "seconds": time.perf_counter() - Timeline.start,
                "losses": {name: float(value) for name, value in (info.get("losses") or {}).items()},
            }
            Timeline.points.append(point)
            other = info.get("other_scores") or {}
            losses = " ".join(f"{name} {value:.6f}" for name, value in point["losses"].items())
            print(
                f"    step {point['step']:>5}  dev ents_f {point['score']:.4f} "
                f"(P {other.get('ents_p', 0):.3f} R {other.get('ents_r', 0):.3f})  loss {losses}  "
                f"{point['seconds']:.0f}s",
                flush=True,
            )

        return log_step, lambda: None

    return setup


SHARED_TOK2VEC = "components.binary_ner.model.tok2vec."


def use_static_vectors(config, vectors: Path) -> None:
    """Give every CNN tok2vec of `config` the static vectors at `vectors` (a
    spaCy pipeline folder or a `spacy init vectors` folder), read once by
    `[initialize] vectors`."""
    config["paths"]["vectors"] = str(vectors)
    embeds = [
        component["model"]["tok2vec"]["embed"]
        for component in config["components"].values()
        if "include_static_vectors" in component.get("model", {}).get("tok2vec", {}).get("embed", {})
    ]
    if not embeds:
        raise ValueError("--vectors: no component of this config has a tok2vec embed with include_static_vectors")
    for embed in embeds:
        embed["include_static_vectors"] = True


def make_config(
    system: str,
    lang: str,
    max_steps: int,
    eval_frequency: int,
    seed: int,
    overrides=(),
    config_path: Optional[Path] = None,
    vectors: Optional[Path] = None,
):
    # config_path replaces configs/<lang>_cnn.cfg (with vectors: <lang>_cnn_vectors.cfg where it
    # exists) for the binary_ner systems only. The peers take the CNN tok2vec of the default
    # config after the overrides, so a `--set` on components.binary_ner.model.tok2vec.* (and
    # the vectors config's tok2vec) reaches every system alike.
    use_custom = config_path is not None and system.startswith("binary_ner")
    default = REPO / "configs" / f"{lang}_cnn.cfg"
    with_vectors = default.with_name(f"{lang}_cnn_vectors.cfg")
    if vectors is not None and with_vectors.exists():
        default = with_vectors
    config = load_config(config_path if use_custom else default)
    for item in overrides:
        key, value = item.split("=", 1)
        if not system.startswith("binary_ner") and not key.startswith(SHARED_TOK2VEC):
            continue
        *sections, name = key.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[name] = srsly.json_loads(value)
    if not system.startswith("binary_ner"):
        factory = "beam_ner" if system == "beam_ner" else "ner"
        tok2vec = config["components"]["binary_ner"]["model"]["tok2vec"]
        del config["components"]["binary_ner"]
        config["components"].update(spacy_peer_components(factory)["components"])
        config["components"][factory]["model"]["tok2vec"] = tok2vec
        config["nlp"]["pipeline"] = [factory]
    config["training"]["max_steps"] = max_steps
    config["training"]["eval_frequency"] = eval_frequency
    config["training"]["patience"] = 0
    config["training"]["seed"] = seed
    config["system"]["seed"] = seed
    config["training"]["logger"] = {"@loggers": "binary_ner_bench.TimelineLogger.v1"}
    if vectors is not None:
        use_static_vectors(config, vectors)
    return config


def read_gold(path: Path, limit: int = 0) -> List[dict]:
    records = list(iter_jsonl(path))
    return records[:limit] if limit else records


def write_jsonl(records: List[dict], path: Path) -> None:
    with path.open("w", encoding="utf8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def evaluate(nlp, test_records: List[dict]) -> Dict[str, float]:
    examples = records_to_examples(nlp, test_records, complete=True)
    scores = nlp.evaluate(examples)
    docs = [eg.predicted.copy() for eg in examples]
    n_words = sum(len(d) for d in docs)
    timings = []
    for _ in range(3):
        copies = [d.copy() for d in docs]
        start = time.perf_counter()
        for _doc in nlp.pipe(copies, batch_size=256):
            pass
        timings.append(time.perf_counter() - start)
    return {
        "p": scores["ents_p"],
        "r": scores["ents_r"],
        "f": scores["ents_f"],
        "wps": n_words / statistics.median(timings),
    }


def threshold_comparison(nlp, dev_records: List[dict], test_records: List[dict]) -> Dict[str, float]:
    """For one trained binary_ner pipeline: the decision threshold chosen on
    dev (what training's dev_threshold callback saves; chosen again here from
    the same weights, so pipelines trained without it get one too), and test
    scores at it and at 0.5. Decoding only: one prediction per split."""
    pipe = nlp.get_pipe("binary_ner")
    saved = pipe.cfg["threshold"]
    pipe.cfg["threshold"] = 0.5  # the configs' threshold: the choice is made against it, as in training
    try:
        best, on_dev = choose_threshold(nlp, records_to_examples(nlp, dev_records, complete=True))
    finally:
        pipe.cfg["threshold"] = saved
    dev_f = {t: float(s["ents_f"] or 0.0) for t, s in on_dev.items()}
    top = best_threshold(dev_f, 0.5)
    on_test = scores_at_thresholds(nlp, records_to_examples(nlp, test_records, complete=True), sorted({best, top, 0.5}))
    out = {
        "saved_threshold": saved,
        "dev_threshold": best,
        "dev_f_at_threshold": on_dev[best]["ents_f"],
        "dev_f_at_05": on_dev[0.5]["ents_f"],
        "dev_best_f_threshold": top,
        "dev_f_at_best": on_dev[top]["ents_f"],
        "dev_best_wins": bootstrap_wins(on_dev[top]["doc_counts"], on_dev[0.5]["doc_counts"]),
        "test_f_at_best": on_test[top]["ents_f"],
    }
    for name, t in (("threshold", best), ("05", 0.5)):
        for key in ("p", "r", "f"):
            out[f"test_{key}_at_{name}"] = on_test[t][f"ents_{key}"]
    return out


def threshold_markdown(results: List[Dict]) -> str:
    lines = [
        "Decision threshold of each binary_ner pipeline, chosen on dev; test scores of the same pipeline at it and "
        "at 0.5 (decoding only):",
        "",
        "| system | seed | saved threshold | best dev F1 at (F1; resamples it beats 0.5 on; test F1) | chosen on dev | "
        "dev F1 at it | dev F1 at 0.5 | test P / R / F1 at it | test P / R / F1 at 0.5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "dev_threshold" not in r:
            continue
        lines.append(
            f"| {r['system']} | {r['seed']} | {r['saved_threshold']:g} | {r['dev_best_f_threshold']:g} "
            f"({r['dev_f_at_best']:.3f}; {r['dev_best_wins']:.0%}; {r['test_f_at_best']:.3f}) | "
            f"{r['dev_threshold']:g} | "
            f"{r['dev_f_at_threshold']:.3f} | {r['dev_f_at_05']:.3f} | {r['test_p_at_threshold']:.3f} / "
            f"{r['test_r_at_threshold']:.3f} / **{r['test_f_at_threshold']:.3f}** | {r['test_p_at_05']:.3f} / "
            f"{r['test_r_at_05']:.3f} / **{r['test_f_at_05']:.3f}** |"
        )
    return "\n".join(lines)


def score_kept(args: argparse.Namespace) -> List[Dict]:
    """Test scores of every pipeline a --keep run left in `args.score_kept`
    (e.g. of a run stopped before its end: its best checkpoint so far), and for
    the binary_ner ones the threshold comparison on the dev split that run wrote
    there. No timing."""
    test_file = next(args.data.glob("test.jsonl*"), None)
    dev_file = args.score_kept / "dev.jsonl"
    if test_file is None or not dev_file.exists():
        raise SystemExit(f"need {args.data}/test.jsonl(.gz) and {dev_file} (written by a --keep run)")
    dev_records, test_records = read_gold(dev_file), read_gold(test_file)
    wanted = [s for s in args.systems.split(",") if s]
    results = []
    for path in sorted(args.score_kept.glob("*-*/model-best")):
        system, seed = path.parent.name.rsplit("-", 1)
        if system not in wanted:
            continue
        print(f"== {system} (seed {seed}): {path}", flush=True)
        nlp = spacy.load(path)
        scores = nlp.evaluate(records_to_examples(nlp, test_records, complete=True))
        result = {
            "system": system,
            "seed": int(seed),
            "model": str(path),
            "p": scores["ents_p"],
            "r": scores["ents_r"],
            "f": scores["ents_f"],
        }
        if system.startswith("binary_ner"):
            result.update(threshold_comparison(nlp, dev_records, test_records))
        print(f"   test P {result['p']:.3f} R {result['r']:.3f} F {result['f']:.3f}", flush=True)
        results.append(result)
    if not results:
        raise SystemExit(f"no SYSTEM-SEED/model-best of {wanted} in {args.score_kept}")
    table = "\n".join(
        ["| system | seed | test P | test R | test F1 |", "|---|---|---|---|---|"]
        + [f"| {r['system']} | {r['seed']} | {r['p']:.3f} | {r['r']:.3f} | {r['f']:.3f} |" for r in results]
    )
    if any("dev_threshold" in r for r in results):
        table += "\n\n" + threshold_markdown(results)
    name = args.name or f"{args.data.name}-kept"
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "data": str(args.data),
        "kept": str(args.score_kept),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
    }
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2))
    (args.out / f"{name}.md").write_text(table + "\n")
    print(table)
    return results


def measure_speed_interleaved(
    results: List[Dict],
    workdir: Path,
    seed: int,
    test_records: List[dict],
    rounds: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Measure inference speed of the trained systems again, taking turns, and
    keep the median per system as `wps`.

    Each system's speed measured right after its own training drifts with
    whatever else the machine runs at that moment; round-robin turns expose all
    systems to the same load, so their ratios hold. `clock=time.process_time`
    counts this process's CPU time instead of the wall clock: on a shared
    machine, time spent waiting for a core is left out.
    """
    nlps = {r["system"]: spacy.load(workdir / f"{r['system']}-{seed}" / "model-best") for r in results}
    docs = {
        name: [eg.predicted for eg in records_to_examples(nlp, test_records, complete=True)]
        for name, nlp in nlps.items()
    }
    timings: Dict[str, List[float]] = {name: [] for name in nlps}
    for _ in range(rounds):
        for name, nlp in nlps.items():
            copies = [d.copy() for d in docs[name]]
            start = clock()
            for _doc in nlp.pipe(copies, batch_size=256):
                pass
            timings[name].append(clock() - start)
    for r in results:
        n_words = sum(len(d) for d in docs[r["system"]])
        r["wps_alone"] = r["wps"]
        r["wps"] = n_words / statistics.median(timings[r["system"]])
    print(
        "   words/s, interleaved, median of %d: " % rounds
        + ", ".join(f"{r['system']} {r['wps']:.0f}" for r in results),
        flush=True,
    )


def run_system(system, lang, train_path, gold_train_path, dev_path, test_records, args, seed, workdir):
    config = make_config(system, lang, args.max_steps, args.eval_frequency, seed, args.set, args.config, args.vectors)
    gold = system.endswith("_gold")
    config["paths"]["train"] = None if gold else str(train_path)
    config["paths"]["train_complete"] = str(gold_train_path) if gold else None
    config["paths"]["dev"] = str(dev_path)
    if not system.startswith("binary_ner"):
        # spaCy's peers read the same examples through the same reader.
        config["corpora"]["train"]["incorrect_spans_key"] = "incorrect_spans"
    print(f"== {system} (seed {seed})", flush=True)
    nlp = init_nlp(config)
    out = workdir / f"{system}-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_nlp(nlp, out, stdout=open(os.devnull, "w"), stderr=sys.stderr)
    total = time.perf_counter() - start
    best = max(Timeline.points, key=lambda p: (p["score"], -p["step"]))
    best_nlp = spacy.load(out / "model-best")
    result = evaluate(best_nlp, test_records)
    if system.startswith("binary_ner"):
        result.update(threshold_comparison(best_nlp, read_gold(dev_path), test_records))
        print(
            f"   threshold {result['saved_threshold']:g} saved, {result['dev_threshold']:g} chosen on dev: "
            f"test F1 {result['test_f_at_threshold']:.3f} at it, {result['test_f_at_05']:.3f} at 0.5",
            flush=True,
        )
    result.update(
        system=system,
        seed=seed,
        best_step=best["step"],
        best_dev_f=best["score"],
        seconds_to_best=best["seconds"],
        train_seconds=total,
        # The process's peak so far: for the first system of a run, that system's peak.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(
        f"   test P {result['p']:.3f} R {result['r']:.3f} F {result['f']:.3f}  "
        f"best step {best['step']}  {best['seconds']:.0f}s  {result['wps']:.0f} words/s  "
        f"train {total:.0f}s  peak RSS {result['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return result


def _ratio(a: float, b: float) -> float:
    """a / b, or nan where b is 0 (a ceiling that scored F1 0, a peer whose
    best dev score came at step 0): the table shows nan, the run is kept."""
    return a / b if b else float("nan")


def summarize(results: List[Dict], systems: List[str]) -> List[Dict]:
    rows = []
    by = {s: [r for r in results if r["system"] == s] for s in systems}
    ref = by.get("ner") or []
    for system in systems:
        rs = by[system]
        if not rs:
            continue
        row = {"system": system, "n_seeds": len(rs)}
        for key in ("p", "r", "f", "seconds_to_best", "wps", "best_step"):
            values = [r[key] for r in rs]
            row[key] = statistics.mean(values)
            row[key + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        ceiling = by.get(system.replace("_gold", "") + "_gold") if not system.endswith("_gold") else rs
        if system in ("beam_ner",):
            ceiling = by.get("ner_gold")
        if ceiling:
            row["f_of_ceiling"] = _ratio(row["f"], statistics.mean(r["f"] for r in ceiling))
        if ref:
            # Ratios per seed against spaCy ner trained in the same run, then the median.
            pairs = [(r, q) for r in rs for q in ref if q["seed"] == r["seed"]]
            row["time_ratio"] = statistics.median(_ratio(r["seconds_to_best"], q["seconds_to_best"]) for r, q in pairs)
            row["wps_ratio"] = statistics.median(_ratio(r["wps"], q["wps"]) for r, q in pairs)
        rows.append(row)
    return rows


def markdown(rows: List[Dict], meta: Dict) -> str:
    lines = [
        f"Data: `{meta['data']}`, decisions: {meta['decisions']} ({meta['n_decisions']} records), "
        f"seeds: {meta['seeds']}, max steps: {meta['max_steps']}; {meta['date']}, {meta['machine']}.",
        "",
        "| system | P | R | F1 | F1 / own ceiling | time to best dev (s) | × spaCy ner | words/s | × spaCy ner |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        sd = f" ± {row['f_sd']:.3f}" if row["n_seeds"] > 1 else ""
        lines.append(
            f"| {row['system']} | {row['p']:.3f} | {row['r']:.3f} | {row['f']:.3f}{sd} | "
            f"{row.get('f_of_ceiling', float('nan')):.2f} | {row['seconds_to_best']:.0f} | "
            f"{row.get('time_ratio', float('nan')):.2f} | {row['wps']:.0f} | {row.get('wps_ratio', float('nan')):.2f} |"
        )
    for failure in meta.get("failures", []):
        lines.append(f"| {failure['system']} | failed (seed {failure['seed']}): {failure['error']} |||||||| ")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, spaCy {spacy.__version__}"


def code_version() -> str:
    """The commit of the imported spacy_binary_ner, with "+changes" where its
    package folder differs from that commit; "" outside a git checkout."""
    import spacy_binary_ner

    package = Path(spacy_binary_ner.__file__).resolve().parent

    def git(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(package), *cmd], capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return ""
    changed = git("status", "--porcelain", "--", ".").stdout.strip()
    return head.stdout.strip() + ("+changes" if changed else "")


def _kept_systems(args: argparse.Namespace) -> List[str]:
    """The systems asked for that `args.speed_of` holds a pipeline of."""
    seed = int(args.seeds.split(",")[0])
    found = sorted(d.name[: -len(f"-{seed}")] for d in args.speed_of.glob(f"*-{seed}") if (d / "model-best").exists())
    systems = [s for s in args.systems.split(",") if s in found]
    if not systems:
        raise SystemExit(f"no SYSTEM-{seed}/model-best in {args.speed_of} (found {found})")
    return systems


def _print_speed_table(results: List[Dict], heading: str) -> None:
    base = next((r["wps"] for r in results if r["system"] == "ner"), float("nan"))
    print(f"\n{heading}\n")
    print("| system | words/s | × spaCy ner |\n|---|---|---|")
    for r in results:
        print(f"| {r['system']} | {r['wps']:.0f} | {r['wps'] / base:.2f} |")


def speed_isolated(args: argparse.Namespace) -> List[Dict]:
    """Words/s of kept pipelines, each system alone in its own process, the
    processes taking turns `args.isolated` times; the median per system.

    In one process a system's speed depended on which system ran before it
    (spaCy `ner` ran 9,000 words/s after one pipeline and 12,000 after
    another, in the same minute): separate processes remove that."""
    script = Path(__file__).resolve()
    systems = _kept_systems(args)
    speeds: Dict[str, List[float]] = {s: [] for s in systems}
    for turn in range(args.isolated):
        for system in systems if turn % 2 == 0 else systems[::-1]:
            cmd = [
                sys.executable,
                str(script),
                "--data",
                str(args.data),
                "--speed-of",
                str(args.speed_of),
                "--systems",
                system,
                "--rounds",
                str(args.rounds),
                "--seeds",
                args.seeds,
                "--blas",
                args.blas,
                "--clock",
                args.clock,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            row = next(line for line in out.splitlines() if line.startswith(f"| {system} |"))
            speeds[system].append(float(row.split("|")[2]))
            print(f"   turn {turn + 1} {system}: {speeds[system][-1]:.0f} words/s", flush=True)
    results = [{"system": s, "wps": statistics.median(v), "wps_all": v} for s, v in speeds.items()]
    _print_speed_table(
        results,
        f"{args.data.name} test split, {machine()}, {args.blas} matrix products, each system "
        f"alone in its process, {args.isolated} turns of {args.rounds} runs, median",
    )
    return results


def speed_only(args: argparse.Namespace) -> List[Dict]:
    """Words/s of kept pipelines (`KEEP_DIR/SYSTEM-SEED/model-best`) on the
    test split, interleaved, with each as a ratio to spaCy `ner`."""
    test_file = next(args.data.glob("test.jsonl*"), None)
    if test_file is None:
        raise SystemExit(f"{args.data} has no test.jsonl(.gz)")
    seed = int(args.seeds.split(",")[0])
    results = [{"system": s, "wps": float("nan")} for s in _kept_systems(args)]
    use_cpu_ops(use_blis=args.blas == "blis")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    measure_speed_interleaved(results, args.speed_of, seed, read_gold(test_file, 0), rounds=args.rounds, clock=clock)
    _print_speed_table(
        results,
        f"{args.data.name} test split, {machine()}, {args.blas} matrix products, "
        f"median of {args.rounds} interleaved rounds, {args.clock} time",
    )
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="folder with train/dev/test .jsonl(.gz)")
    p.add_argument("--decisions", default="teach-1x", help="teach-1x, teach-3x, or a JSONL file of answers")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS))
    p.add_argument("--seeds", default="0", help="comma-separated training (and teachsim) seeds")
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--eval-frequency", type=int, default=200)
    p.add_argument("--lang", default=None, help="zh or en (default: from the data folder name)")
    p.add_argument("--quick", action="store_true", help="150 training sentences, 100 dev/test, 40 steps")
    p.add_argument(
        "--train-sentences",
        type=int,
        default=0,
        metavar="N",
        help="train on the first N training sentences only (after any held-out dev split); 0: all",
    )
    p.add_argument("--teachsim", type=Path, default=SHARED_BENCH / "teachsim.py")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override for binary_ner systems, e.g. components.binary_ner.unknown_weight=0.02",
    )
    p.add_argument("--keep", type=Path, default=None, help="keep the trained pipelines in this folder")
    p.add_argument("--name", default=None, help="output file stem (default: data-decisions)")
    p.add_argument(
        "--config", type=Path, default=None, help="config for the binary_ner systems instead of configs/<lang>_cnn.cfg"
    )
    p.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="static vectors for every system's tok2vec: a spaCy pipeline folder or a `spacy init "
        "vectors` folder (binary_ner takes configs/<lang>_cnn_vectors.cfg where it exists)",
    )
    p.add_argument(
        "--code",
        type=Path,
        default=None,
        help="Python file to import first, e.g. one registering a custom model (as spacy train --code)",
    )
    p.add_argument(
        "--speed-of",
        type=Path,
        default=None,
        metavar="KEEP_DIR",
        help="only re-measure words/s, interleaved, of the pipelines a --keep run left in KEEP_DIR",
    )
    p.add_argument("--rounds", type=int, default=5, help="interleaved speed rounds (median taken)")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="with --speed-of: time by the wall clock, or by this process's CPU time (leaves out waiting for a core "
        "on a shared machine; set OMP_NUM_THREADS=1 so that one thread does the work)",
    )
    p.add_argument(
        "--blas",
        choices=["blis", "numpy"],
        default="blis",
        help="with --speed-of: CPU matrix products of every system, Thinc's default BLIS or "
        "numpy's BLAS (spacy_binary_ner.ops.use_cpu_ops)",
    )
    p.add_argument(
        "--score-kept",
        type=Path,
        default=None,
        metavar="KEEP_DIR",
        help="only score on the test split the pipelines a --keep run left in KEEP_DIR, and for binary_ner "
        "compare test F1 at the dev-chosen decision threshold and at 0.5 (decoding only)",
    )
    p.add_argument(
        "--isolated",
        type=int,
        default=0,
        metavar="TURNS",
        help="with --speed-of: each system in its own process, processes taking turns TURNS times",
    )
    args = p.parse_args(argv)
    if args.score_kept is not None:
        return score_kept(args)
    if args.speed_of is not None and args.isolated:
        return speed_isolated(args)
    if args.speed_of is not None:
        return speed_only(args)
    if args.code is not None:
        spacy.util.import_file("binary_ner_bench_code", args.code)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    seeds = [int(s) for s in args.seeds.split(",")]
    lang = args.lang or ("zh" if args.data.name.endswith("_zh") else "en")
    if args.quick:
        args.max_steps, args.eval_frequency = 40, 20

    def split(name: str) -> Optional[Path]:
        return next(args.data.glob(f"{name}.jsonl*"), None)

    train_file, dev_file, test_file = split("train"), split("dev"), split("test")
    if train_file is None or test_file is None:
        p.error(f"{args.data} needs train.jsonl(.gz) and test.jsonl(.gz)")
    held_out_dev = 0
    if dev_file is None:
        # Never select on the test split: hold out the end of the training split instead.
        held_out_dev = 100 if args.quick else 1000
        print(
            f"{args.data} has no dev split: the last {held_out_dev} training sentences (at most a tenth) "
            "are the dev split",
            file=sys.stderr,
        )
    limit = 150 if args.quick else args.train_sentences
    eval_limit = 100 if args.quick else 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    failures: List[Dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        gold_train = workdir / "gold_train.jsonl"
        train_records = read_gold(train_file, 0 if held_out_dev else limit)
        if held_out_dev:
            held_out_dev = min(held_out_dev, len(train_records) // 10) or 1
            dev_records = train_records[-held_out_dev:]
            train_records = train_records[:-held_out_dev][: limit or None]
        else:
            dev_records = read_gold(dev_file, eval_limit)
        if args.train_sentences:
            print(f"training on the first {len(train_records)} training sentences", file=sys.stderr)
        write_jsonl(train_records, gold_train)
        dev = workdir / "dev.jsonl"
        write_jsonl(dev_records, dev)
        test_records = read_gold(test_file, eval_limit)
        n_decisions = None
        for seed in seeds:
            if args.decisions in DECISIONS:
                decisions = workdir / f"decisions-{seed}.jsonl"
                subprocess.run(
                    [
                        sys.executable,
                        str(args.teachsim),
                        str(gold_train),
                        str(decisions),
                        "--per-sentence",
                        str(DECISIONS[args.decisions]),
                        "--seed",
                        str(seed),
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            else:
                decisions = Path(args.decisions)
            n_decisions = sum(1 for _ in iter_jsonl(decisions))
            seed_results = []
            for system in systems:
                try:
                    seed_results.append(
                        run_system(system, lang, decisions, gold_train, dev, test_records, args, seed, workdir)
                    )
                except Exception as err:  # a peer that crashes is a result, not the end of the run
                    error = f"{type(err).__name__}: {err}".strip().rstrip(":")
                    where = traceback.extract_tb(err.__traceback__)[-1]
                    error += f" (in {Path(where.filename).name}:{where.lineno})"
                    print(f"   {system} failed: {error}", flush=True)
                    failures.append({"system": system, "seed": seed, "error": error})
            if seed_results:
                measure_speed_interleaved(seed_results, workdir, seed, test_records)
            results.extend(seed_results)
    meta = {
        "data": str(args.data),
        "decisions": args.decisions,
        "n_decisions": n_decisions,
        "seeds": seeds,
        "max_steps": args.max_steps,
        "train_sentences": len(train_records),
        "vectors": str(args.vectors) if args.vectors else None,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "code": code_version(),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "failures": failures,
    }
    rows = summarize(results, systems)
    table = markdown(rows, meta)
    name = args.name or f"{args.data.name}-{Path(args.decisions).stem}" + ("-quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": results}, indent=2))
    if any("dev_threshold" in r for r in results):
        table += "\n\n" + threshold_markdown(results)
    (args.out / f"{name}.md").write_text(table + "\n")
    print(table)
    return rows


if __name__ == "__main__":
    main()
