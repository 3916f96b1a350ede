"""The annotation loop: a model that learns while people answer accept/reject.

Teach tools drive a model through two plain callables, and this module gives
them for a `binary_ner` pipeline (spaCy's `beam_ner` works too, for comparison)
without importing any such tool:

- `AnnotationLoop.predict(stream)` yields `(score, task)`: one proposed span and
  label per task, the model's probability in `task["meta"]["score"]`, and
  stable `_input_hash` / `_task_hash`;
- `AnnotationLoop.update(answers) -> float`: one optimizer step on answered
  tasks, read with the same semantics as training (`records_to_examples`).

Question selection is a sorter over `(score, task)` pairs: `prefer_uncertain`,
`prefer_high_scores` or `prefer_random`. Each keeps an exponential moving
average of the priorities it has seen and passes on the tasks above it, so a
stream whose scores drift still yields questions, and after `patience` tasks
in a row held back it passes on the best of them: the queue never starves.

For a cold start, `PatternMatcher` reads spaCy `EntityRuler` patterns (phrase
or token patterns); `AnnotationLoop(stream)` mixes their matches with the
model's questions, `pattern_ratio` of them while fewer than `patterns_until`
answers came back, pattern matches first.

Scoring is lazy and chunked: the stream is scored `chunk_size` texts at a time
when the sorter needs more tasks, so questions always come from a recent model
and the pool is never scored as a whole.
"""
import contextlib
import hashlib
import random
import statistics
import time
from collections import Counter, deque
from itertools import islice
from pathlib import Path
from typing import Any, Callable, ContextManager, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Optimizer

from .data import ReadStats, _parse_tokens, _Skip, iter_jsonl, records_to_examples
from .pipeline import BinaryNER
from .targets import cell_coordinates, n_span_cells

# The optimizer's learning rate `initialize_pipeline` sets (see there).
LOOP_LEARN_RATE = 0.005
# The binary_ner decision threshold `initialize_pipeline` sets (see there).
LOOP_THRESHOLD = 0.2

Task = Dict[str, Any]
ScoredTask = Tuple[float, Task]
Sorter = Callable[[Iterable[ScoredTask]], Iterator[Task]]
# A proposed span: (start token, end token exclusive, label, probability).
Candidate = Tuple[int, int, str, float]


def _hash(*parts: Any) -> int:
    text = "\x1f".join(str(p) for p in parts).encode("utf8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=4).digest(), "little", signed=True)


def set_hashes(task: Task) -> Task:
    """Give a task stable hashes, as teach tools expect (in place).

    `_input_hash` is kept if present, else hashed from the text; `_task_hash`
    is hashed from the input hash and the task's spans and labels, so the same
    question about the same text always gets the same hash, across runs.

    task (Task): A task with `text` and optional `spans`.
    RETURNS (Task): The same task.
    """
    if task.get("_input_hash") is None:
        task["_input_hash"] = _hash(task["text"])
    spans = sorted((s["start"], s["end"], s.get("label", "")) for s in task.get("spans", []))
    task["_task_hash"] = _hash(task["_input_hash"], *spans)
    return task


# Sorters ---------------------------------------------------------------------


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


def prefer_random(
    stream: Iterable[ScoredTask], *, rate: float = 0.5, seed: int = 0
) -> Iterator[Task]:
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


# Patterns --------------------------------------------------------------------


class PatternMatcher:
    """Match spaCy `EntityRuler` patterns: `{"label": "ORG", "pattern": "中国银行"}`
    (phrase, tokenized with the pipeline's tokenizer) or `{"label": "ORG",
    "pattern": [{"LOWER": "apple"}, ...]}` (token pattern).

    Unlike the `EntityRuler`, every match is kept by default, overlaps
    included: each is a question, and the rejected ones ("本科" inside
    "本科学历") teach the model where entities end. With `overlapping=False`
    overlaps are resolved as the `EntityRuler` does: the longest match wins
    (the earliest among equals). In the resume_zh loop simulation keeping
    every match did better (test F1 0.744 against 0.593 at 2,000 decisions).

    nlp (Language): Its vocab and tokenizer.
    patterns (Iterable[dict]): The patterns.
    phrase_matcher_attr (str): Token attribute phrase patterns match on.
    overlapping (bool): Keep overlapping matches.
    """

    def __init__(
        self,
        nlp: Language,
        patterns: Iterable[dict],
        *,
        phrase_matcher_attr: str = "ORTH",
        overlapping: bool = True,
    ) -> None:
        self.overlapping = overlapping
        self.matcher = Matcher(nlp.vocab)
        self.phrase_matcher = PhraseMatcher(nlp.vocab, attr=phrase_matcher_attr)
        self.patterns: List[dict] = []
        self.labels: List[str] = []
        for i, pattern in enumerate(patterns, 1):
            if not isinstance(pattern, dict) or not isinstance(pattern.get("label"), str) or not pattern["label"]:
                raise ValueError(
                    f"Pattern {i} ({str(pattern)[:80]}) needs a non-empty string `label`: write it as "
                    '{"label": "ORG", "pattern": "Acme Corp"} or with a list of token dicts as pattern.'
                )
            key = str(len(self.patterns))
            value = pattern.get("pattern")
            if isinstance(value, str) and value:
                self.phrase_matcher.add(key, [nlp.make_doc(value)])
            elif isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
                try:
                    self.matcher.add(key, [value])
                except (ValueError, KeyError) as err:
                    raise ValueError(f"Pattern {i} ({str(pattern)[:80]}) is not a valid Matcher pattern: {err}") from None
            else:
                raise ValueError(
                    f"Pattern {i} ({str(pattern)[:80]}) needs a `pattern`: a non-empty string (phrase) "
                    "or a non-empty list of token dicts (Matcher pattern)."
                )
            self.patterns.append(pattern)
            if pattern["label"] not in self.labels:
                self.labels.append(pattern["label"])

    @classmethod
    def from_file(cls, nlp: Language, path: Union[str, Path], **kwargs: Any) -> "PatternMatcher":
        """Read patterns from a JSONL file, one pattern a line."""
        return cls(nlp, iter_jsonl(path), **kwargs)

    def __len__(self) -> int:
        return len(self.patterns)

    def __call__(self, doc: Doc) -> List[Tuple[int, int, str, int]]:
        """Every match in a doc. RETURNS (List[Tuple[int, int, str, int]]):
        `(start, end, label, pattern index)`, token offsets, sorted, unique."""
        matches = set()
        found = list(self.phrase_matcher(doc)) if len(self.phrase_matcher) else []
        if len(self.matcher):
            found += self.matcher(doc)
        for match_id, start, end in found:
            index = int(doc.vocab.strings[match_id])
            matches.add((start, end, self.patterns[index]["label"], index))
        unique: Dict[Tuple[int, int, str], Tuple[int, int, str, int]] = {}
        for match in sorted(matches):
            unique.setdefault(match[:3], match)
        found_matches = list(unique.values())
        if self.overlapping:
            return found_matches
        kept: List[Tuple[int, int, str, int]] = []
        taken: set = set()
        # Longest first, then earliest, then pattern order: the EntityRuler's
        # rule (spacy.util.filter_spans); two labels on the same span both stay.
        for match in sorted(found_matches, key=lambda m: (m[0] - m[1], m[0], m[3])):
            span = range(match[0], match[1])
            if any(i in taken for i in span) and not any(
                (k[0], k[1]) == (match[0], match[1]) for k in kept
            ):
                continue
            kept.append(match)
            taken.update(span)
        return sorted(kept)


# The loop --------------------------------------------------------------------


class _Text:
    """A task's doc and the character offsets of its tokens."""

    __slots__ = ("task", "doc", "starts", "ends")

    def __init__(self, task: Task, doc: Doc, starts: List[int], ends: List[int]) -> None:
        self.task = task
        self.doc = doc
        self.starts = starts
        self.ends = ends


class AnnotationLoop:
    """Propose spans to annotate and learn from the answers, one batch at a time.

    nlp (Language): An initialized pipeline with a `binary_ner` component (or
        spaCy's `beam_ner`, for comparison); see `initialize_pipeline`.
    component (Optional[str]): The component's name; None for the first
        `binary_ner` (else `beam_ner`) in the pipeline.
    sorter (Union[str, Sorter]): "uncertainty", "confident", "random", or a
        function from `(score, task)` pairs to tasks.
    patterns (Optional[PatternMatcher]): Cold-start patterns.
    pattern_ratio (float): Share of the questions taken from pattern matches
        while they last and fewer than `patterns_until` answers came back.
    patterns_until (Optional[int]): Answers after which pattern matches are no
        longer asked; None to ask them while they last.
    pattern_skip_above (float): A pattern match the model already scores at
        least this high is not asked (the model has learned it); counted.
    pattern_retire_below (float): A pattern whose matches were accepted less
        often than this, once `pattern_retire_after` of them were answered, is
        no longer asked (a too general pattern such as "公司" for ORG); counted.
        0 (the default) keeps every pattern: in the resume_zh simulation the
        rejected matches taught the model more than the questions that
        replaced them.
    pattern_retire_after (int): Answers to a pattern's matches before it can
        be retired.
    pattern_lookahead (int): Texts read ahead of the model to look for pattern
        matches: with a few patterns for a rare label, their matches are
        otherwise met only as fast as the model's questions use up the
        stream. The texts are kept and reach the model in order; a match is
        scored by the model when it is asked. 0: patterns see the texts as the
        model scores them.
    pattern_max_answers (Optional[int]): Answers to a pattern's matches after
        which it is retired whatever they were: the model has its examples,
        and the same string asked again and again teaches it little. None for
        no limit.
    min_score (float): Smallest probability of a proposed span.
    balance_labels (bool): With the "uncertainty" or "confident" sorter, keep
        a moving average per label (`key=by_label`), and let every text also
        propose the best `per_label` spans of each label: a label the model
        scores low everywhere still gets questions. Off by default: in the
        resume_zh simulation (3 seeds) it halved the accepts and lowered test
        F1 at 2,000 decisions from 0.774 to 0.619, because the best guesses
        for a label with no accepted example yet (NAME) were almost all wrong.
    per_label (int): Spans of each label every text proposes besides its
        overall best (with `balance_labels`).
    max_per_text (int): Most spans proposed per text, highest scores first; a
        text with none above `min_score` still proposes its best span, so the
        stream never runs dry while texts remain.
    chunk_size (int): Texts scored at a time.
    replay (int): Earlier answered texts added to each update, at random, so
        that a step also rehearses what was learned (0: none).
    drop (float): Dropout rate of the updates.
    average_weights (bool): Propose spans with a moving average of the
        weights (the optimizer's `averages`, which `spacy train` evaluates and
        saves with `use_averages`), while updates step the live weights. An
        online step at the loop's learning rate moves the model a lot; the
        average does not follow each batch's noise. In the resume_zh
        simulation it lifted test F1 after 2,000 decisions on each of 3
        seeds (mean 0.735 to 0.778). Use `averaged_params()` to evaluate or
        save the same weights.
    self_training (bool): Let updates use the component's self-training
        targets (`pseudo_above`: unknown spans the model is confident about
        taken as entities). Off by default, whatever the config says: in the
        resume_zh simulation (seed 0, 2,000 decisions) it lowered dev F1 from
        0.786 to 0.739, as a model that has seen few answers is confidently
        wrong; in `spacy train` on the same corpus's decisions it helps.
    optimizer (Optional[Optimizer]): The optimizer; None for `nlp.create_optimizer()`.
    seed (int): Seed of the random sorter and the replay choice.
    """

    def __init__(
        self,
        nlp: Language,
        *,
        component: Optional[str] = None,
        sorter: Union[str, Sorter] = "uncertainty",
        patterns: Optional[PatternMatcher] = None,
        pattern_ratio: float = 0.5,
        patterns_until: Optional[int] = None,
        pattern_skip_above: float = 0.9,
        pattern_retire_below: float = 0.0,
        pattern_retire_after: int = 4,
        pattern_max_answers: Optional[int] = None,
        pattern_lookahead: int = 0,
        min_score: float = 0.01,
        balance_labels: bool = False,
        per_label: int = 1,
        max_per_text: int = 8,
        chunk_size: int = 8,
        replay: int = 0,
        drop: float = 0.1,
        average_weights: bool = True,
        self_training: bool = False,
        optimizer: Optional[Optimizer] = None,
        seed: int = 0,
    ) -> None:
        self.nlp = nlp
        self.component = component if component is not None else _find_component(nlp)
        self.pipe = nlp.get_pipe(self.component)
        if not self.pipe.labels:
            raise ValueError(
                f"The component '{self.component}' has no labels: initialize the pipeline first, "
                f"e.g. spacy_binary_ner.loop.initialize_pipeline(nlp, labels)."
            )
        self.is_binary = isinstance(self.pipe, BinaryNER)
        if not self.is_binary and not hasattr(self.pipe, "scored_ents"):
            raise ValueError(
                f"The component '{self.component}' ({type(self.pipe).__name__}) cannot propose scored "
                "spans: use a binary_ner component, or spaCy's beam_ner."
            )
        if isinstance(sorter, str):
            if sorter not in SORTERS:
                raise ValueError(f"Unknown sorter {sorter!r}: use one of {sorted(SORTERS)} or a function.")
            name = sorter
            sorter = SORTERS[name]
            if name == "random":
                sorter = _with_seed(prefer_random, seed)
            elif balance_labels:
                sorter = _with_key(sorter, by_label)
        if not 0 <= pattern_ratio <= 1:
            raise ValueError(f"pattern_ratio must be in [0, 1], not {pattern_ratio}")
        if pattern_lookahead < 0:
            raise ValueError(f"pattern_lookahead must be at least 0, not {pattern_lookahead}")
        if pattern_retire_after < 1:
            raise ValueError(f"pattern_retire_after must be at least 1, not {pattern_retire_after}")
        if per_label < 0:
            raise ValueError(f"per_label must be at least 0, not {per_label}")
        if max_per_text < 1 or chunk_size < 1 or replay < 0:
            raise ValueError("max_per_text and chunk_size must be at least 1, replay at least 0")
        self.sorter: Sorter = sorter
        self.patterns = patterns
        self.pattern_ratio = pattern_ratio
        self.patterns_until = patterns_until
        self.pattern_skip_above = pattern_skip_above
        self.pattern_retire_below = pattern_retire_below
        self.pattern_retire_after = pattern_retire_after
        self.pattern_max_answers = pattern_max_answers
        self.pattern_lookahead = pattern_lookahead
        self.pattern_answers: Dict[int, Counter] = {}
        self.min_score = min_score
        self.max_per_text = max_per_text
        self.per_label = per_label if balance_labels else 0
        self.chunk_size = chunk_size
        self.replay = replay
        self.drop = drop
        self.optimizer = optimizer if optimizer is not None else nlp.create_optimizer()
        self.average_weights = average_weights
        self.self_training = self_training
        if average_weights and self.optimizer.averages is None:
            self.optimizer.averages = {}
        self.rng = random.Random(seed)
        self.n_answers = 0
        self.answer_counts: Counter = Counter()
        self.stats: Counter = Counter()
        self.update_seconds: List[float] = []
        self._memory: Dict[Any, List[Task]] = {}
        self._asked: set = set()
        self._preceding = [proc for name, proc in nlp.pipeline[: nlp.pipe_names.index(self.component)]]
        # The only trainable component, with its own tok2vec (no listener to
        # feed): it can be updated without the rest of the pipeline.
        self._alone = self.is_binary and not nlp.config["training"]["annotating_components"] and all(
            name == self.component or not hasattr(proc, "update") for name, proc in nlp.pipeline
        ) and not any(hasattr(layer, "upstream_name") or "listener" in layer.name for layer in self.pipe.model.walk())

    # Scoring ---------------------------------------------------------------

    def _make_text(self, task: Task) -> _Text:
        if not isinstance(task, dict) or not isinstance(task.get("text"), str):
            raise ValueError(f"A task must be a dict with a string `text`, not {str(task)[:80]}")
        tokens = task.get("tokens")
        if tokens:
            try:
                words, spaces, starts, ends = _parse_tokens(tokens, task["text"])
            except _Skip as err:
                raise ValueError(f"The task {str(task)[:80]} has bad `tokens`: {err.detail}.") from None
            doc = Doc(self.nlp.vocab, words=words, spaces=spaces)
        else:
            doc = self.nlp.make_doc(task["text"])
            starts = [t.idx for t in doc]
            ends = [t.idx + len(t) for t in doc]
        return _Text(task, doc, starts, ends)

    def averaged_params(self) -> ContextManager:
        """Within this context the pipeline has the weights the loop proposes
        with: the moving average with `average_weights` (once an update was
        made), else the live weights. Evaluate or save the model in it:

            with loop.averaged_params():
                nlp.to_disk("model")

        RETURNS (ContextManager): The context.
        """
        if self.average_weights and self.optimizer.averages:
            return self.nlp.use_params(self.optimizer.averages)
        return contextlib.nullcontext()

    def _score_chunk(self, texts: List[_Text]) -> List[Tuple[List[Candidate], Callable[[int, int, str], float]]]:
        """Per text: the proposed spans, and a lookup of any span's score."""
        docs = [t.doc for t in texts]
        for proc in self._preceding:
            docs = [proc(doc) for doc in docs]
        with self.averaged_params():
            if self.is_binary:
                return self._binary_candidates(docs)
            return self._beam_candidates(docs)

    def _binary_candidates(self, docs: List[Doc]) -> List[Tuple[List[Candidate], Callable[[int, int, str], float]]]:
        pipe = self.pipe
        L, labels = pipe.max_span_length, pipe.labels
        label_index = {label: k for k, label in enumerate(labels)}
        logits = pipe.model.ops.to_numpy(pipe.predict(docs))
        probs = 1.0 / (1.0 + numpy.exp(-logits))
        out = []
        offset = 0
        for doc in docs:
            n = len(doc)
            rows = n_span_cells(n, L)
            doc_probs = probs[offset : offset + rows]
            offset += rows
            if rows == 0:
                out.append(([], lambda s, e, l: 0.0))
                continue
            starts, widths = cell_coordinates(n, L)
            flat = doc_probs.ravel()
            above = numpy.flatnonzero(flat >= self.min_score)
            if len(above) > self.max_per_text:
                above = above[numpy.argpartition(-flat[above], self.max_per_text - 1)[: self.max_per_text]]
            elif len(above) == 0:
                above = numpy.array([int(flat.argmax())])
            above = above[numpy.argsort(-flat[above], kind="stable")]
            K = len(labels)
            if self.per_label:
                # Each label's best spans too, however low: the way in for a
                # label the model does not know yet.
                m = min(self.per_label, rows)
                best_rows = numpy.argpartition(-doc_probs, m - 1, axis=0)[:m] if m < rows else numpy.arange(rows)[:, None].repeat(K, 1)
                extra = (best_rows * K + numpy.arange(K)[None, :]).ravel()
                extra = extra[numpy.argsort(-flat[extra], kind="stable")]
                above = numpy.concatenate([above, extra[~numpy.isin(extra, above)]])
            candidates = [
                (int(starts[i // K]), int(starts[i // K] + widths[i // K] + 1), labels[i % K], float(flat[i]))
                for i in above
            ]
            table = numpy.zeros((n, L, K), dtype=doc_probs.dtype)
            table[starts, widths] = doc_probs

            def lookup(start: int, end: int, label: str, table: numpy.ndarray = table) -> float:
                width = end - start - 1
                k = label_index.get(label)
                if k is None or width >= table.shape[1]:
                    return 0.0
                return float(table[start, width, k])

            out.append((candidates, lookup))
        return out

    def _beam_candidates(self, docs: List[Doc]) -> List[Tuple[List[Candidate], Callable[[int, int, str], float]]]:
        beams = self.pipe.predict(docs)
        out = []
        for scores in self.pipe.scored_ents(beams):
            table = {(s, e, _label_str(self.nlp, l)): float(p) for (s, e, l), p in scores.items()}
            ranked = sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))
            chosen = [kv for kv in ranked if kv[1] >= self.min_score][: self.max_per_text] or ranked[:1]
            candidates = [(s, e, label, p) for (s, e, label), p in chosen]
            out.append((candidates, lambda s, e, l, table=table: table.get((s, e, l), 0.0)))
        return out

    def _task(self, text: _Text, start: int, end: int, label: str, score: float, source: str, **meta: Any) -> Task:
        task = {k: v for k, v in text.task.items() if k not in ("spans", "answer", "_task_hash", "meta")}
        task["spans"] = [{
            "start": text.starts[start], "end": text.ends[end - 1],
            "token_start": start, "token_end": end - 1, "label": label,
        }]
        task["meta"] = {**text.task.get("meta", {}), "score": score, "source": source, **meta}
        return set_hashes(task)

    def _scored_chunks(
        self, stream: Iterable[Union[Task, _Text]], with_patterns: bool = True
    ) -> Iterator[Tuple[List[ScoredTask], List[ScoredTask]]]:
        """Per chunk of texts: (model proposals, pattern proposals)."""
        stream = iter(stream)
        while True:
            chunk = [t if isinstance(t, _Text) else self._make_text(t) for t in islice(stream, self.chunk_size)]
            if not chunk:
                return
            model_tasks: List[ScoredTask] = []
            pattern_tasks: List[ScoredTask] = []
            for text, (candidates, lookup) in zip(chunk, self._score_chunk(chunk)):
                for start, end, label, score in candidates:
                    model_tasks.append((score, self._task(text, start, end, label, score, "model")))
                if self.patterns is not None and with_patterns:
                    for start, end, label, index in self.patterns(text.doc):
                        if self.pattern_retired(index):
                            self.stats["pattern match skipped: pattern retired"] += 1
                            continue
                        score = lookup(start, end, label)
                        if score >= self.pattern_skip_above:
                            self.stats["pattern match skipped: model already confident"] += 1
                            continue
                        task = self._task(text, start, end, label, score, "pattern", pattern=index)
                        pattern_tasks.append((score, task))
            self.stats["texts scored"] += len(chunk)
            yield model_tasks, pattern_tasks

    def predict(self, stream: Iterable[Task]) -> Iterator[ScoredTask]:
        """Score a stream of tasks (`text`, optional `tokens`), `chunk_size`
        texts at a time, and propose spans.

        stream (Iterable[Task]): Incoming tasks.
        YIELDS (ScoredTask): `(score, task)`, one span per task, its label and
            the model's probability in `task["meta"]["score"]`.
        """
        for model_tasks, _ in self._scored_chunks(stream):
            yield from model_tasks

    def match_patterns(self, stream: Iterable[Task]) -> Iterator[ScoredTask]:
        """The pattern matches of a stream, scored by the model (the score is
        the model's probability of the matched span and label)."""
        if self.patterns is None:
            return
        for _, pattern_tasks in self._scored_chunks(stream):
            yield from pattern_tasks

    def __call__(self, stream: Iterable[Task]) -> Iterator[Task]:
        """The questions to ask: the sorter's choice of the model's proposals,
        mixed with pattern matches (`pattern_ratio` of the questions, pattern
        matches first) while patterns are in use. A task already asked in this
        loop is not asked again (counted in `stats`).

        stream (Iterable[Task]): Incoming tasks (`text`, optional `tokens`).
        YIELDS (Task): One question at a time.
        """
        model_queue: Deque[ScoredTask] = deque()
        pattern_queue: Deque[ScoredTask] = deque()
        # Pattern matches found ahead of the model, scored when asked.
        early: Deque[Tuple[_Text, int, int, str, int]] = deque()
        scored_text: List[Any] = [None, -1, None]  # the early text scored last, at which answer count, its lookup
        exhausted = False
        if self.patterns is not None and self.pattern_lookahead:
            chunks = self._scored_chunks(self._read_ahead(stream, early), with_patterns=False)
        else:
            chunks = self._scored_chunks(stream)

        def fill() -> bool:
            nonlocal exhausted
            if exhausted:
                return False
            try:
                model_tasks, pattern_tasks = next(chunks)
            except StopIteration:
                exhausted = True
                return False
            model_queue.extend(model_tasks)
            pattern_queue.extend(pattern_tasks)
            return True

        def model_stream() -> Iterator[ScoredTask]:
            while model_queue or fill():
                while model_queue:
                    yield model_queue.popleft()

        def next_pattern_task() -> Optional[Task]:
            # Answers may have retired a pattern since its matches were queued.
            while pattern_queue:
                task = pattern_queue.popleft()[1]
                if not self.pattern_retired(task["meta"]["pattern"]):
                    return task
                self.stats["pattern match skipped: pattern retired"] += 1
            while early:
                text, start, end, label, index = early.popleft()
                if self.pattern_retired(index):
                    self.stats["pattern match skipped: pattern retired"] += 1
                    continue
                # A text's matches are queued together: it is scored once for
                # all of them, again only if an update came in between.
                if scored_text[0] is not text or scored_text[1] != self.n_answers:
                    scored_text[:] = [text, self.n_answers, self._score_chunk([text])[0][1]]
                score = scored_text[2](start, end, label)
                if score >= self.pattern_skip_above:
                    self.stats["pattern match skipped: model already confident"] += 1
                    continue
                return self._task(text, start, end, label, score, "pattern", pattern=index)
            return None

        selected = self.sorter(model_stream())
        n_asked = n_patterns = 0
        while True:
            task = None
            if self._patterns_active():
                if not pattern_queue and not early:
                    fill()
                if n_patterns < self.pattern_ratio * (n_asked + 1):
                    task = next_pattern_task()
                    n_patterns += task is not None
            if task is None:
                task = next(selected, None)
            if task is None and self._patterns_active():
                task = next_pattern_task()
                n_patterns += task is not None
            if task is None:
                return
            if task["_task_hash"] in self._asked:
                self.stats["question skipped: asked before"] += 1
                continue
            self._asked.add(task["_task_hash"])
            n_asked += 1
            self.stats[f"asked: {task['meta']['source']}"] += 1
            yield task

    def _read_ahead(self, stream: Iterable[Task], early: Deque[Tuple[_Text, int, int, str, int]]) -> Iterator[_Text]:
        """The stream's texts, in order, read `pattern_lookahead` texts ahead;
        each text's pattern matches go to `early` as it is read."""
        assert self.patterns is not None
        source = iter(stream)
        ahead: Deque[_Text] = deque()
        while True:
            for task in islice(source, max(0, self.pattern_lookahead - len(ahead))):
                text = self._make_text(task)
                for start, end, label, index in self.patterns(text.doc):
                    early.append((text, start, end, label, index))
                ahead.append(text)
            if not ahead:
                return
            yield ahead.popleft()

    def pattern_retired(self, index: int) -> bool:
        """Whether the pattern `index` is no longer asked: at least
        `pattern_retire_after` of its matches were answered, and fewer than
        `pattern_retire_below` of those were accepts; or `pattern_max_answers`
        of them were answered."""
        counts = self.pattern_answers.get(index)
        if not counts:
            return False
        n = counts["accept"] + counts["reject"]
        if self.pattern_max_answers is not None and n >= self.pattern_max_answers:
            return True
        return n >= self.pattern_retire_after and counts["accept"] < self.pattern_retire_below * n

    def _patterns_active(self) -> bool:
        return (
            self.patterns is not None
            and self.pattern_ratio > 0
            and (self.patterns_until is None or self.n_answers < self.patterns_until)
        )

    # Learning --------------------------------------------------------------

    def update(self, answers: Sequence[Task]) -> float:
        """Learn from a batch of answered tasks: one optimizer step.

        Answers are read as in training (`records_to_examples`): an accept
        makes its span an entity, a reject rules out that label on that span,
        an ignore is skipped. Every earlier answer about the same texts joins
        the step, plus `replay` earlier answered texts.

        answers (Sequence[Task]): Tasks with `answer` set to "accept", "reject"
            or "ignore".
        RETURNS (float): The loss of the step (0.0 if nothing was learnable).
        """
        begin = time.perf_counter()
        touched = []
        for task in answers:
            answer = task.get("answer") if isinstance(task, dict) else None
            if answer not in ("accept", "reject", "ignore"):
                raise ValueError(
                    f"Answer {str(task)[:80]} needs `answer` set to accept, reject or ignore."
                )
            self.answer_counts[answer] += 1
            meta = task.get("meta") or {}
            source = meta.get("source")
            if source:
                self.stats[f"answered: {source} {answer}"] += 1
            if source == "pattern" and isinstance(meta.get("pattern"), int):
                self.pattern_answers.setdefault(meta["pattern"], Counter())[answer] += 1
            if answer == "ignore":
                continue
            key = set_hashes(task)["_input_hash"]
            if key not in self._memory:
                self._memory[key] = []
            self._memory[key].append(task)
            if key not in touched:
                touched.append(key)
        self.n_answers += len(answers)
        keys = list(touched)
        if self.replay:
            touched_set = set(touched)
            others = [k for k in self._memory if k not in touched_set]
            keys += self.rng.sample(others, min(self.replay, len(others)))
        records = [task for key in keys for task in self._memory[key]]
        if not records:
            return 0.0
        read = ReadStats()
        examples = records_to_examples(self.nlp, records, labels=self.pipe.labels, stats=read)
        for reason, count in read.skipped.items():
            if reason not in ("duplicate answer", "ignore answer"):
                self.stats[f"answer skipped: {reason}"] += count
        losses: Dict[str, float] = {}
        suspended = self.pipe.cfg["pseudo_above"] if self.is_binary and not self.self_training else None
        if suspended is not None:
            self.pipe.cfg["pseudo_above"] = None
        try:
            if self._alone:
                # `Language.update` copies every doc first, for components that
                # annotate during training; with none of those, that copy was a
                # tenth of the step. The component updates and steps by itself.
                self.pipe.update(examples, sgd=self.optimizer, drop=self.drop, losses=losses)
            else:
                self.nlp.update(examples, sgd=self.optimizer, drop=self.drop, losses=losses)
        finally:
            if suspended is not None:
                self.pipe.cfg["pseudo_above"] = suspended
        self.update_seconds.append(time.perf_counter() - begin)
        return float(losses.get(self.component, 0.0))

    def median_update_ms(self) -> float:
        """Median wall time of the updates so far, in milliseconds."""
        return 1000 * statistics.median(self.update_seconds) if self.update_seconds else 0.0


def _with_key(sorter: Callable[..., Iterator[Task]], key: Callable[[Task], Any]) -> Sorter:
    def keyed(stream: Iterable[ScoredTask]) -> Iterator[Task]:
        return sorter(stream, key=key)

    return keyed


def _with_seed(sorter: Callable[..., Iterator[Task]], seed: int) -> Sorter:
    def seeded(stream: Iterable[ScoredTask]) -> Iterator[Task]:
        return sorter(stream, seed=seed)

    return seeded


def _label_str(nlp: Language, label: Any) -> str:
    return label if isinstance(label, str) else nlp.vocab.strings[label]


def _find_component(nlp: Language) -> str:
    for name, proc in nlp.pipeline:
        if isinstance(proc, BinaryNER):
            return name
    for name, proc in nlp.pipeline:
        if hasattr(proc, "scored_ents"):
            return name
    raise ValueError(
        f"No binary_ner (or beam_ner) component in the pipeline {nlp.pipe_names}: "
        "add one with nlp.add_pipe('binary_ner'), or pass component=NAME."
    )


def initialize_pipeline(
    nlp: Language,
    labels: Iterable[str],
    texts: Iterable[Union[str, Task]] = (),
    *,
    component: Optional[str] = None,
    learn_rate: Optional[float] = LOOP_LEARN_RATE,
    threshold: Optional[float] = LOOP_THRESHOLD,
) -> Optimizer:
    """Initialize a new pipeline for the loop: it knows its labels before any
    answer comes in.

    nlp (Language): The pipeline, not yet initialized.
    labels (Iterable[str]): The entity labels to annotate.
    texts (Iterable[Union[str, Task]]): A few sample texts or tasks, to size
        the model's layers (optional).
    component (Optional[str]): The component; None to find it.
    learn_rate (Optional[float]): The optimizer's learning rate. The loop makes
        one step per batch of answers, far fewer than training does: 0.005
        was best on the resume_zh dev split in the simulator (dev F1 0.714
        after 2,000 decisions; 0.688 at 0.01; after 1,000, 0.60 at 0.003 and
        0.50 at spaCy's usual 0.001). None keeps the config's.
    threshold (Optional[float]): The decision threshold of a `binary_ner`
        component (its `threshold` setting: the probability from which a span
        goes into `doc.ents`; saved with the pipeline). A model that learns
        from a few thousand answers is under-confident: every span no answer
        mentions is pulled towards "no entity". 0.2 was best on the resume_zh
        dev split after 2,000 decisions on each of 3 seeds (test F1 0.810
        against 0.799 at 0.5, mean of the seeds). None keeps the config's.
    RETURNS (Optimizer): The optimizer, to pass to `AnnotationLoop`.
    """
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    pipe = nlp.get_pipe(component if component is not None else _find_component(nlp))
    if threshold is not None and isinstance(pipe, BinaryNER):
        pipe.cfg["threshold"] = threshold
    for label in labels:
        pipe.add_label(label)
    docs = []
    for item in islice(texts, 10):
        text = item if isinstance(item, str) else item["text"]
        docs.append(nlp.make_doc(text))
    if not docs:
        docs = [nlp.make_doc("x")]
    examples = [Example(doc, doc.copy()) for doc in docs]
    optimizer = nlp.initialize(lambda: examples)
    if learn_rate is not None:
        optimizer.learn_rate = learn_rate
    # `AnnotationLoop(average_weights=...)` decides whether to keep averages.
    optimizer.averages = None
    return optimizer
