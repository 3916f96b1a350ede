"""The annotation loop: a model that learns while people answer accept/reject.

- `tasks`: the tasks a teach tool shows, their hashes, and questions about spans;
- `sorters`: which of the model's proposals are asked (`prefer_uncertain`, ...);
- `patterns`: `PatternMatcher`, cold-start questions from `EntityRuler` patterns;
- `propose`: what the model proposes (`BinaryNERProposer`, the `Proposer` protocol);
- `loop`: `AnnotationLoop` and `initialize_pipeline`.
"""

from .loop import LOOP_LEARN_RATE, LOOP_THRESHOLD, AnnotationLoop, initialize_pipeline
from .patterns import PatternMatcher
from .propose import BinaryNERProposer, Proposals, Proposer
from .sorters import SORTERS, Sorter, by_label, prefer_high_scores, prefer_random, prefer_uncertain
from .tasks import Candidate, Lookup, ScoredTask, Task, TaskText, set_hashes

__all__ = [
    "LOOP_LEARN_RATE",
    "LOOP_THRESHOLD",
    "SORTERS",
    "AnnotationLoop",
    "BinaryNERProposer",
    "Candidate",
    "Lookup",
    "PatternMatcher",
    "Proposals",
    "Proposer",
    "ScoredTask",
    "Sorter",
    "Task",
    "TaskText",
    "by_label",
    "initialize_pipeline",
    "prefer_high_scores",
    "prefer_random",
    "prefer_uncertain",
    "set_hashes",
]
