"""The annotation loop: a model that learns while people answer accept/reject.

- `tasks`: the tasks a teach tool shows, their hashes, and questions about spans;
- `sorters`: which of the model's proposals are asked (`prefer_uncertain`, ...);
- `patterns`: `PatternMatcher`, cold-start questions from `EntityRuler` patterns, and
  `PatternSchedule`, when they are asked;
- `queues`: `QuestionQueues`, one pass's proposals scored chunk by chunk;
- `propose`: what the model proposes (`BinaryNERProposer`, the `Proposer` protocol);
- `loop`: `AnnotationLoop` and `initialize_pipeline`;
- `correct`: `Corrector`, whole-text questions to correct (`correct`, `silver-to-gold`).
"""

from .correct import Corrector, correction_hash, is_correction
from .loop import LOOP_LEARN_RATE, LOOP_THRESHOLD, AnnotationLoop, check_labels, initialize_pipeline
from .patterns import PatternMatcher, PatternSchedule
from .propose import BinaryNERProposer, Proposals, Proposer
from .queues import QuestionQueues
from .sorters import SORTERS, Sorter, by_label, prefer_high_scores, prefer_random, prefer_uncertain
from .tasks import Candidate, Lookup, ScoredTask, Task, TaskText, set_hashes

__all__ = [
    "LOOP_LEARN_RATE",
    "LOOP_THRESHOLD",
    "SORTERS",
    "AnnotationLoop",
    "BinaryNERProposer",
    "Candidate",
    "Corrector",
    "Lookup",
    "PatternMatcher",
    "PatternSchedule",
    "Proposals",
    "Proposer",
    "QuestionQueues",
    "ScoredTask",
    "Sorter",
    "Task",
    "TaskText",
    "by_label",
    "check_labels",
    "correction_hash",
    "initialize_pipeline",
    "is_correction",
    "prefer_high_scores",
    "prefer_random",
    "prefer_uncertain",
    "set_hashes",
]
