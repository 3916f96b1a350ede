"""`python -m spacy_binary_ner select PIPELINE INPUT OUT.jsonl --n N`: write
the N most informative questions of a pool of texts as teach tasks. Each
shard's best N go to OUT.jsonl.parts/ (so a rerun completes an interrupted
run), then are merged into OUT.jsonl."""

from typing import List, Optional

from ..cli_args import ArgumentParser
from .cli import add_run_options, check_pipeline_loads, check_run_arguments, run
from .select import STRATEGIES, SelectJob


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog="python -m spacy_binary_ner select", description=__doc__)
    parser.add_argument("pipeline", help="pipeline folder or package with a binary_ner component")
    parser.add_argument("input", help="a JSONL / .jsonl.gz / Parquet file, a folder of them, or a glob (quoted)")
    parser.add_argument("output", help="the teach tasks (JSONL); parts and account beside it")
    parser.add_argument("--n", type=int, required=True, help="how many questions")
    parser.add_argument("--strategy", choices=STRATEGIES, default="uncertainty", help="which questions first")
    parser.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"argument --n: must be at least 1, not {args.n}")
    check_run_arguments(parser, args, output_folder=False)
    job = SelectJob(
        args.pipeline,
        args.output,
        n=args.n,
        strategy=args.strategy,
        seed=args.seed,
        max_length=args.max_length,
        code=args.code,
    )
    check_pipeline_loads(parser, job, args)
    return run(job, args, "select")
