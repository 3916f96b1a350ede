"""The engines that run a corpus job over its shards.

`run_local` streams shard after shard through `nlp.pipe` on this machine, or
hands shards to a pool of processes. `run_ray` hands them to a pool of Ray
actors, each loading the pipeline once and reading and writing its shards
itself: the paths must be ones every node sees. Both write the same shard outputs; a shard whose output
exists is done, so a rerun completes an interrupted run.
"""

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Dict, List, Optional, Protocol

from spacy.language import Language
from spacy.tokens import Doc

from ..data import ReadStats
from .sources import Shard, ShardOutput, SourceRecord, read_shard

ENGINES = ("local", "ray")


class Job(Protocol):
    """What an engine runs: `AnnotateJob` or `SelectJob`."""

    max_length: int

    @property
    def nlp(self) -> Language: ...

    @property
    def shard_output(self) -> ShardOutput: ...

    def begin(self, shard: Shard) -> Any: ...

    def add(self, state: Any, doc: Doc, record: SourceRecord) -> None: ...

    def finish(self, state: Any, stats: ReadStats) -> Dict[str, Any]: ...

    def abort(self, state: Any) -> None: ...


class Progress:
    """Docs/s and shards done on stderr, at most every `every` seconds."""

    def __init__(self, total_shards: int, every: float = 5.0, name: str = "corpus", quiet: bool = False) -> None:
        self.total_shards = total_shards
        self.every = every
        self.name = name
        self.quiet = quiet
        self.docs = 0
        self.shards = 0
        self.start = time.perf_counter()
        self._last = self.start

    def add(self, docs: int = 0, shards: int = 0) -> None:
        self.docs += docs
        self.shards += shards
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self.report()

    @property
    def docs_per_second(self) -> float:
        return self.docs / max(time.perf_counter() - self.start, 1e-9)

    def report(self, end: str = "") -> None:
        if self.quiet:
            return
        print(
            f"{self.name}: {self.shards}/{self.total_shards} shards, {self.docs:,} docs, "
            f"{self.docs_per_second:,.0f} docs/s{end}",
            file=sys.stderr,
            flush=True,
        )


def run_shard(job: Job, shard: Shard, batch_size: int = 256, progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Run a job on one shard in this process and write its output.

    RETURNS (Dict[str, Any]): The shard's name and counts.
    """
    nlp = job.nlp
    stats = ReadStats()
    state = job.begin(shard)
    try:
        pairs = ((r.text, r) for r in read_shard(shard, stats, job.max_length))
        for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
            job.add(state, doc, record)
            if progress is not None:
                progress.add(docs=1)
    except BaseException:
        job.abort(state)
        raise
    return job.finish(state, stats)


def run_local(
    job: Job,
    shards: List[Shard],
    n_process: int = 1,
    batch_size: int = 256,
    progress: Optional[Progress] = None,
) -> List[Dict[str, Any]]:
    """Run a job on the shards on this machine. With one process, shard after
    shard streams through `nlp.pipe` here; with more, a pool of `n_process`
    spawned processes, each loading the pipeline once, takes a shard at a time.
    Either way each shard goes through `nlp.pipe` alone, in the same batches
    (as on Ray), so the engines give the same records; scores agree to float
    noise (~1e-6) where torch runs on another number of threads.
    (`nlp.pipe(n_process=...)` forks, and a torch model in a forked child
    hangs once the parent has used torch's thread pool.)

    RETURNS (List[Dict[str, Any]]): Each shard's name and counts.
    """
    if n_process > 1:
        return _run_pool(job, shards, n_process, batch_size, progress)
    results = []
    for shard in shards:
        results.append(run_shard(job, shard, batch_size, progress))
        if progress is not None:
            progress.add(shards=1)
    return results


_WORKER: Dict[str, Any] = {}


def _die_with_parent() -> None:
    """Have Linux stop this process when its parent dies: a killed run's pool
    workers would otherwise go on with their shards unseen."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _init_pool_worker(job: Job, batch_size: int) -> None:
    _die_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    job.nlp
    _WORKER["job"], _WORKER["batch_size"] = job, batch_size


def _pool_shard(shard: Dict[str, Any]) -> Dict[str, Any]:
    return run_shard(_WORKER["job"], Shard.from_dict(shard), _WORKER["batch_size"])


def _run_pool(
    job: Job, shards: List[Shard], n_process: int, batch_size: int, progress: Optional[Progress]
) -> List[Dict[str, Any]]:
    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        n_process, mp_context=context, initializer=_init_pool_worker, initargs=(job, batch_size)
    ) as pool:
        futures = [pool.submit(_pool_shard, shard.to_dict()) for shard in shards]
        try:
            for future in as_completed(futures):
                result = future.result()
                results.append(result)
                if progress is not None:
                    progress.add(docs=result["used"], shards=1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def import_ray() -> Any:
    """Ray, or an error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "The ray engine needs Ray: pip install 'spacy-binary-ner[ray]' (or use --engine local)"
        ) from None
    return ray


# Only shard descriptions and counts travel through Ray (the actors read and
# write the shards themselves), so a Ray started here gets a small object
# store; its default, 30% of the machine's memory, is a ceiling nothing uses.
OBJECT_STORE_BYTES = 128 * 2**20


class ShardWorker:
    """What each Ray actor runs: it loads the pipeline once, then takes one
    shard at a time, reads it, runs the job and writes its output.

    job (Job): The job, sent to each actor.
    batch_size (int): The `nlp.pipe` batch size.
    """

    def __init__(self, job: Job, batch_size: int = 256) -> None:
        self.job = job
        self.batch_size = batch_size
        job.nlp

    def run(self, shard: Dict[str, Any]) -> Dict[str, Any]:
        """Run the job on one shard (as `Shard.to_dict`) and write its output.

        RETURNS (Dict[str, Any]): The shard's name and counts.
        """
        return run_shard(self.job, Shard.from_dict(shard), self.batch_size)


def start_ray(workers: int, address: Optional[str] = None) -> bool:
    """Connect to the cluster at `address`, or start a local Ray with
    `workers` CPUs, unless this process is connected already.

    RETURNS (bool): Whether Ray was started here (and should be stopped).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            # "local": a new Ray here, even where `ray start` runs a cluster
            address="local",
            num_cpus=workers,
            object_store_memory=OBJECT_STORE_BYTES,
            include_dashboard=False,
            log_to_driver=False,
            # Ray runs its workers at nice 15 by default; the actors do the
            # work here, at the niceness of the command, as the local pool does.
            _system_config={"worker_niceness": 0},
        )
    return True


def run_ray(
    job: Job,
    shards: List[Shard],
    workers: int = 2,
    batch_size: int = 256,
    address: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> List[Dict[str, Any]]:
    """Run a job on the shards with `workers` Ray actors (one CPU each), each
    with its pipeline, taking one shard at a time: Ray's batch inference
    pattern. Uses the Ray session already started in this process if there is
    one, else connects to `address` (an existing cluster), else starts a local
    Ray with `workers` CPUs (and stops it at the end). Ray restarts a killed
    actor and retries its shard; a shard's output appears only when complete,
    so nothing is doubled.

    RETURNS (List[Dict[str, Any]]): Each shard's name and counts.
    """
    ray = import_ray()
    started = start_ray(workers, address)
    try:
        if not shards:
            return []
        actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(ShardWorker)
        actors = [actor.remote(job, batch_size) for _ in range(min(workers, len(shards)))]
        todo = [s.to_dict() for s in reversed(shards)]
        running: Dict[Any, Any] = {}

        def submit(worker: Any) -> None:
            if todo:
                running[worker.run.remote(todo.pop())] = worker

        for worker in actors:
            submit(worker)
        results = []
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            worker = running.pop(ref)
            submit(worker)
            result = ray.get(ref)
            results.append(result)
            if progress is not None:
                progress.add(docs=result["used"], shards=1)
        for worker in actors:
            ray.kill(worker)
        return results
    finally:
        if started:
            ray.shutdown()


def run_job(
    job: Any,
    shards: List[Shard],
    engine: str = "local",
    *,
    workers: int = 1,
    batch_size: int = 256,
    address: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> List[Dict[str, Any]]:
    """Run a job on the shards not yet done with the engine named; the shards
    done by an earlier run are left as they are.

    RETURNS (List[Dict[str, Any]]): The counts of the shards run now.
    """
    todo = [s for s in shards if not job.shard_output.is_done(s)]
    if progress is not None:
        progress.shards = len(shards) - len(todo)
    if engine == "local":
        return run_local(job, todo, n_process=workers, batch_size=batch_size, progress=progress)
    if engine == "ray":
        return run_ray(job, todo, workers=workers, batch_size=batch_size, address=address, progress=progress)
    raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
