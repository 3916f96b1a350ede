"""Sorters: which of the model's proposals become questions.

A sorter takes `(score, task)` pairs and yields tasks. `prefer_uncertain` and
`prefer_high_scores` keep an exponential moving average of the priorities seen
and pass on the tasks above it, so a stream whose scores drift still yields
questions; after `patience` tasks in a row held back they pass on the best of
them, so the queue never starves. `prefer_random` is the baseline.
"""

import random
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .tasks import ScoredTask, Task

Sorter = Callable[[Iterable[ScoredTask]], Iterator[Task]]


def by_label(task: Task) -> str:
    """The label of a task's (first) span: the `key` that gives every label
    its own moving average in `prefer_uncertain` and `prefer_high_scores`."""
    spans = task.get("spans") or [{}]
    return str(spans[0].get("label", ""))


def _moving_average_filter(
    stream: Iterable[ScoredTask],
    priority: Callable[[float], float],
    alpha: float,
    patience: int,
    key: Optional[Callable[[Task], Any]] = None,
) -> Iterator[Task]:
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], not {alpha}")
    if patience < 1:
        raise ValueError(f"patience must be at least 1, not {patience}")
    averages: Dict[Any, float] = {}
    held_by_key: Dict[Any, List[Tuple[float, Task]]] = {}
    for score, task in stream:
        group = key(task) if key is not None else None
        p = priority(score)
        average = averages.get(group, p)
        held = held_by_key.setdefault(group, [])
        if p >= average:
            held.clear()
            yield task
        else:
            held.append((p, task))
            if len(held) >= patience:
                # The stream went quiet for this sorter: pass on the best of
                # what it held back rather than let the annotator wait.
                best = max(range(len(held)), key=lambda i: held[i][0])
                task = held[best][1]
                held.clear()
                yield task
        averages[group] = alpha * p + (1 - alpha) * average


def prefer_uncertain(
    stream: Iterable[ScoredTask],
    *,
    alpha: float = 0.1,
    patience: int = 20,
    key: Optional[Callable[[Task], Any]] = None,
) -> Iterator[Task]:
    """Pass on the tasks whose score is closest to 0.5.

    A task is passed on if its uncertainty, `1 - |2 * score - 1|`, is at least
    the exponential moving average of the uncertainties seen so far; after
    `patience` tasks in a row held back, the most uncertain of them is passed on.
    With `key` (e.g. `by_label`) each group of tasks has its own average and
    patience, so a label the model still scores low everywhere (a new entity
    type) gets its most uncertain questions asked too, instead of none.

    stream (Iterable[ScoredTask]): `(score, task)` pairs, scores in [0, 1].
    alpha (float): Weight of the newest priority in the moving average.
    patience (int): Most tasks held back in a row (per group).
    key (Optional[Callable[[Task], Any]]): Groups with separate averages; None
        for one average over all tasks.
    YIELDS (Task): The selected tasks.
    """
    return _moving_average_filter(stream, lambda s: 1.0 - abs(2.0 * s - 1.0), alpha, patience, key)


def prefer_high_scores(
    stream: Iterable[ScoredTask],
    *,
    alpha: float = 0.1,
    patience: int = 20,
    key: Optional[Callable[[Task], Any]] = None,
) -> Iterator[Task]:
    """Pass on the tasks the model is most confident are right: as
    `prefer_uncertain`, with the score itself as the priority."""
    return _moving_average_filter(stream, float, alpha, patience, key)


def prefer_random(stream: Iterable[ScoredTask], *, rate: float = 0.5, seed: int = 0) -> Iterator[Task]:
    """Pass on each task with probability `rate`, whatever its score: the
    baseline that selection strategies are measured against.

    stream (Iterable[ScoredTask]): `(score, task)` pairs.
    rate (float): Probability of passing a task on, in (0, 1].
    seed (int): Seed of the random choices.
    YIELDS (Task): The selected tasks.
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], not {rate}")
    rng = random.Random(seed)
    for _, task in stream:
        if rng.random() < rate:
            yield task


SORTERS: Dict[str, Sorter] = {
    "uncertainty": prefer_uncertain,
    "confident": prefer_high_scores,
    "random": prefer_random,
}
