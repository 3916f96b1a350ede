"""`python -m spacy_binary_ner annotate PIPELINE INPUT OUTPUT`: annotate a
corpus, one output shard per input shard; rerun the same command to complete
an interrupted run."""

from typing import List, Optional

from ..cli_args import ArgumentParser
from .annotate import FORMATS, AnnotateJob
from .cli import add_run_options, check_pipeline_loads, check_run_arguments, run


def main(argv: Optional[List[str]] = None) -> int:
    parser = ArgumentParser(prog="python -m spacy_binary_ner annotate", description=__doc__)
    parser.add_argument("pipeline", help="pipeline folder or package with a binary_ner component")
    parser.add_argument("input", help="a JSONL / .jsonl.gz / Parquet file, a folder of them, or a glob (quoted)")
    parser.add_argument("output", help="output folder: one file per shard, plan.json, account.json")
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="JSONL records or .spacy DocBins")
    parser.add_argument("--min-score", type=float, default=0.1, help="smallest span probability in `scores`")
    add_run_options(parser)
    args = parser.parse_args(argv)
    check_run_arguments(parser, args, output_folder=True)
    job = AnnotateJob(
        args.pipeline,
        args.output,
        format=args.format,
        min_score=args.min_score,
        max_length=args.max_length,
        code=args.code,
    )
    check_pipeline_loads(parser, job, args)
    return run(job, args, "annotate")
