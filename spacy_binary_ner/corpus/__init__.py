"""Annotating and selecting from corpora of millions of texts, on one machine
(`nlp.pipe`) or a Ray cluster (a pool of actors), restartable shard by shard."""

from .annotate import AnnotateJob, doc_record
from .engines import ENGINES, ShardWorker, run_job, run_local, run_ray, run_shard
from .select import STRATEGIES, SelectJob, TopN, merge_parts, priority
from .sources import CorpusError, Shard, ShardOutput, find_inputs, plan_shards, read_shard

__all__ = [
    "AnnotateJob",
    "CorpusError",
    "ENGINES",
    "STRATEGIES",
    "SelectJob",
    "Shard",
    "ShardOutput",
    "ShardWorker",
    "TopN",
    "doc_record",
    "find_inputs",
    "merge_parts",
    "plan_shards",
    "priority",
    "read_shard",
    "run_job",
    "run_local",
    "run_ray",
    "run_shard",
]
