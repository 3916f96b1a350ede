"""What the `annotate` and `select` commands share: their options and the run."""

import argparse
import sys
from concurrent.futures.process import BrokenProcessPool
from typing import Any, List

from ..cli_args import fail, input_error, output_file_error, output_folder_error, pipeline_error
from .engines import ENGINES, Progress, run_job
from .sources import DEFAULT_SHARD_SIZE, CorpusError, find_inputs


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a corpus run (engine, workers, sharding)."""
    parser.add_argument("--engine", choices=ENGINES, default="local", help="local: nlp.pipe here; ray: Ray actors")
    parser.add_argument("--address", default=None, help="Ray cluster address (ray engine; default: start Ray here)")
    parser.add_argument("--workers", type=int, default=1, help="n_process (local) or Ray actors (ray)")
    parser.add_argument("--batch-size", type=int, default=256, help="nlp.pipe batch size")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="most records per shard")
    parser.add_argument("--max-length", type=int, default=100000, help="longest text, in characters")
    parser.add_argument("--code", default=None, help="Python file to import before loading the pipeline")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, output_folder: bool) -> None:
    """Check a corpus run's arguments before anything is read or written:
    a wrong one exits through `parser.error` (one line, status 2).

    parser (argparse.ArgumentParser): The command's parser.
    args (argparse.Namespace): Its arguments (`pipeline`, `input`, `output`
        and the run options).
    output_folder (bool): Whether `output` is a folder (else a file).
    """
    for name in ("workers", "batch_size", "shard_size", "max_length"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be at least 1, not {getattr(args, name)}")
    fail(parser, pipeline_error(args.pipeline))
    if args.code is not None:
        fail(parser, input_error(args.code, "--code"))
    if output_folder:
        fail(parser, output_folder_error(args.output, "output"))
    else:
        fail(parser, output_file_error(args.output, "output"))
        fail(parser, output_folder_error(args.output + ".parts", "output (its .parts folder)"))
    try:
        find_inputs(args.input)
    except CorpusError as err:
        parser.error(f"argument input: {err}")


def check_pipeline_loads(parser: argparse.ArgumentParser, job: Any, args: argparse.Namespace) -> None:
    """Load the job's pipeline here, for the local engine (which uses it; Ray
    actors load their own), so that a pipeline that cannot be loaded, or has
    no binary_ner, is a wrong argument before anything is written.

    parser (argparse.ArgumentParser): The command's parser.
    job (Any): The job, with its `nlp` (loaded on first use).
    args (argparse.Namespace): Its arguments (`engine`, `pipeline`).
    """
    if args.engine != "local":
        return
    try:
        job.nlp
    except Exception as err:  # noqa: BLE001 - whatever stops the load, the argument names it
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        parser.error(f"argument pipeline: cannot load '{args.pipeline}': {first}")


def run(job: Any, args: argparse.Namespace, name: str) -> int:
    """Plan (or resume) the run, run the shards still missing, and write the total."""
    try:
        inputs = find_inputs(args.input)
        shards: List = job.shard_output.start(inputs, args.shard_size, job.settings())
    except CorpusError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return 2
    progress = Progress(len(shards), name=name, quiet=args.quiet)
    try:
        run_job(
            job,
            shards,
            args.engine,
            workers=args.workers,
            batch_size=args.batch_size,
            address=args.address,
            progress=progress,
        )
    except BrokenProcessPool as err:
        print(
            f"{name}: a worker process died ({err}); the shards finished are kept: "
            f"rerun the same command to complete the run",
            file=sys.stderr,
        )
        return 1
    progress.report(end=" (this run)")
    total = job.complete(shards)
    if not args.quiet:
        print(f"{name}: {total}", file=sys.stderr)
    return 0
