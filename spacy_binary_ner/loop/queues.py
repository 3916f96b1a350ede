"""The proposals of one pass of `AnnotationLoop` over a stream, scored chunk by
chunk as the questions use them up."""

from collections import deque
from typing import TYPE_CHECKING, Deque, Iterable, Iterator, Optional, Tuple

from .tasks import Lookup, ScoredTask, Task, TaskText

if TYPE_CHECKING:
    from .loop import AnnotationLoop

# A pattern match found ahead of the model: its text, span, label and pattern index.
EarlyMatch = Tuple[TaskText, int, int, str, int]


class QuestionQueues:
    """The proposals of one `AnnotationLoop.__call__`, scored chunk by chunk
    as the questions use them up."""

    def __init__(self, loop: "AnnotationLoop", stream: Iterable[Task]) -> None:
        self.loop = loop
        self.model: Deque[ScoredTask] = deque()
        self.patterns: Deque[ScoredTask] = deque()
        # Pattern matches found ahead of the model, scored when asked.
        self.early: Deque[EarlyMatch] = deque()
        # The early text scored last, at which answer count, and its lookup.
        self._scored: Optional[Tuple[TaskText, int, Lookup]] = None
        self._exhausted = False
        if loop.patterns is not None and loop.schedule.lookahead:
            self._chunks = loop.scored_chunks(loop.read_ahead(stream, self.early), with_patterns=False)
        else:
            self._chunks = loop.scored_chunks(stream)

    def fill(self) -> bool:
        """Score the next chunk into the queues. RETURNS (bool): False at the end."""
        if self._exhausted:
            return False
        try:
            model_tasks, pattern_tasks = next(self._chunks)
        except StopIteration:
            self._exhausted = True
            return False
        self.model.extend(model_tasks)
        self.patterns.extend(pattern_tasks)
        return True

    def model_stream(self) -> Iterator[ScoredTask]:
        """The model's proposals, as the sorter reads them."""
        while self.model or self.fill():
            while self.model:
                yield self.model.popleft()

    def next_pattern_task(self) -> Optional[Task]:
        """The next pattern question, or None."""
        loop = self.loop
        # Answers may have retired a pattern since its matches were queued.
        while self.patterns:
            task = self.patterns.popleft()[1]
            if not loop.pattern_retired(task["meta"]["pattern"]):
                return task
            loop.stats["pattern match skipped: pattern retired"] += 1
        while self.early:
            text, start, end, label, index = self.early.popleft()
            task = loop.pattern_question(text, start, end, label, index, self._lookup(text))
            if task is not None:
                return task
        return None

    def _lookup(self, text: TaskText) -> Lookup:
        """A lookup of the span scores of an early text, scored when first used."""

        def lookup(start: int, end: int, label: str) -> float:
            # A text's matches are queued together: it is scored once for all
            # of them, again only if an update came in between.
            loop = self.loop
            if self._scored is None or self._scored[0] is not text or self._scored[1] != loop.n_answers:
                self._scored = (text, loop.n_answers, loop.score_texts([text])[0][1])
            return self._scored[2](start, end, label)

        return lookup
