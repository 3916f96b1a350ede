"""Accepted strings found again in other answered texts, as weak entities.

A teach answer names one span of its text, so most entities of the answered
texts are unknown to the loss. Many of them are strings that were accepted in
another text. `propagate_accepts` finds those strings again in every answered
text and puts them, with the label they were accepted with, into the span
group `reference.spans[weak_spans_key]`; the pipe trains them as entities
with a small weight (`weak_weight`).

A string is propagated only if it was accepted with one label only and
rejected with that label in at most `max_rejected` of its answers with it
(default 0: never). A string that is an entity in few
of the places it occurs (a Chinese character that is a place name on its own
and part of many words) is accepted in few of them: strings whose accepts are
fewer than `min_rate` of their occurrences in the answered texts are left out,
and so are strings that, of the places where they are part of an accepted
entity, are inside a longer one in more than `max_nested` of them (a surname
accepted alone but mostly seen inside full names).
A match becomes a weak entity only where all its tokens are unknown, and not
where that span and label was rejected. Texts with complete annotations are
neither searched nor used as a source: they have no unknown tokens.
"""

from collections import Counter, defaultdict
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from spacy.tokens import Span
from spacy.training import Example

Key = Tuple[str, ...]


def propagate_accepts(
    examples: Iterable[Example],
    *,
    weak_spans_key: str,
    incorrect_spans_key: str,
    min_rate: float = 0.03,
    max_nested: float = 0.3,
    max_rejected: float = 0.0,
    unpushed: bool = False,
) -> Counter:
    """Add weak entities to the references of the answered examples, in place.

    examples (Iterable[Example]): The examples, as the reader built them.
    weak_spans_key (str): Span group of the weak entities in `reference.spans`.
    incorrect_spans_key (str): Span group of the rejected spans.
    min_rate (float): Smallest share of a string's occurrences that must have
        been accepted for the string to be propagated.
    max_nested (float): Largest share of a string's places in accepted
        entities that may be inside a longer accepted entity.
    max_rejected (float): Largest share of a string's answers with its label
        that may be rejects (0: a string rejected once is left out).
    unpushed (bool): Also mark, in `unpushed_spans_key(weak_spans_key)`, every
        other place of a string with a label it was accepted with in at least
        `min_rate` of its places (whatever the other filters say): the pipe
        does not push those cells towards "no entity".
    RETURNS (Counter): The account: "strings accepted", "strings propagated",
        "strings left out: several labels", "... rejected", "... rarely
        accepted", "... part of longer entities", and "weak entities" added.
    """
    for name, value in (("min_rate", min_rate), ("max_nested", max_nested), ("max_rejected", max_rejected)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {value}")
    answered = [eg for eg in examples if _has_unknown_tokens(eg)]
    # Each text's words and known tokens, read once for every pass below.
    words = [[t.text for t in eg.reference] for eg in answered]
    known = [[bool(t.ent_iob_) for t in eg.reference] for eg in answered]
    accepted: Dict[Key, Counter] = defaultdict(Counter)
    rejected: Dict[Key, Counter] = defaultdict(Counter)
    for eg in answered:
        ref = eg.reference
        for ent in ref.ents:
            accepted[_key(ent)][ent.label_] += 1
        for span in ref.spans.get(incorrect_spans_key, []):
            rejected[_key(span)][span.label_] += 1
    account: Counter = Counter()
    account["strings accepted"] = len(accepted)
    candidates: Dict[Key, str] = {}
    for key, labels in accepted.items():
        if len(labels) > 1:
            account["strings left out: several labels"] += 1
            continue
        label = next(iter(labels))
        n_rejected = rejected.get(key, Counter())[label]
        if n_rejected > max_rejected * (labels[label] + n_rejected):
            account["strings left out: rejected"] += 1
            continue
        candidates[key] = label
    occurrences: Counter = Counter()
    lexicon = _Lexicon(candidates)
    for text_words in words:
        for start, end, key in lexicon.matches(text_words):
            occurrences[key] += 1
    # How often each string is part of a longer accepted entity: there it is
    # no entity of its own, and neither are its propagated look-alikes.
    nested: Counter = Counter()
    for eg in answered:
        for ent in eg.reference.ents:
            ent_words = [t.text for t in ent]
            for i in range(len(ent_words)):
                for j in range(i + 1, len(ent_words) + 1):
                    key = tuple(ent_words[i:j])
                    if key in candidates and j - i < len(ent_words):
                        nested[key] += 1
    kept = {}
    for key, label in candidates.items():
        n_accepted = sum(accepted[key].values())
        if n_accepted < min_rate * occurrences[key]:
            account["strings left out: rarely accepted"] += 1
        elif nested[key] > max_nested * (n_accepted + nested[key]):
            account["strings left out: part of longer entities"] += 1
        else:
            kept[key] = label
    account["strings propagated"] = len(kept)
    lexicon = _Lexicon(kept)
    for eg, text_words, text_known in zip(answered, words, known):
        ref = eg.reference
        rejected_here = {(s.start, s.end, s.label_) for s in ref.spans.get(incorrect_spans_key, [])}
        weak = []
        for start, end, key in lexicon.matches(text_words):
            label = kept[key]
            if (start, end, label) in rejected_here or any(text_known[start:end]):
                continue
            weak.append(Span(ref, start, end, label=label))
        if weak:
            ref.spans[weak_spans_key] = weak
            account["weak entities"] += len(weak)
    if unpushed:
        _mark_unpushed(
            answered,
            words,
            known,
            accepted,
            rejected_key=incorrect_spans_key,
            weak_spans_key=weak_spans_key,
            min_rate=min_rate,
            account=account,
        )
    return account


def unpushed_spans_key(weak_spans_key: str) -> str:
    """Span group of the places the "no entity" prior leaves alone."""
    return f"{weak_spans_key}_unpushed"


def _mark_unpushed(
    answered: List[Example],
    words: List[List[str]],
    known: List[List[bool]],
    accepted: Dict[Key, Counter],
    *,
    rejected_key: str,
    weak_spans_key: str,
    min_rate: float,
    account: Counter,
) -> None:
    lexicon = _Lexicon(accepted)
    matches = [list(lexicon.all_matches(text_words)) for text_words in words]
    occurrences = Counter(key for found in matches for _, _, key in found)
    pairs = {
        key: [label for label, n in labels.items() if n >= min_rate * occurrences[key]]
        for key, labels in accepted.items()
    }
    key_name = unpushed_spans_key(weak_spans_key)
    for eg, found, text_known in zip(answered, matches, known):
        ref = eg.reference
        taken = {(s.start, s.end, s.label_) for s in ref.spans.get(rejected_key, [])}
        taken.update((s.start, s.end, s.label_) for s in ref.spans.get(weak_spans_key, []))
        spans = []
        for start, end, key in found:
            if any(text_known[start:end]):
                continue
            for label in pairs[key]:
                if (start, end, label) not in taken:
                    spans.append(Span(ref, start, end, label=label))
        if spans:
            ref.spans[key_name] = spans
            account["unpushed places"] += len(spans)


def _has_unknown_tokens(eg: Example) -> bool:
    return any(not token.ent_iob_ for token in eg.reference)


def _key(span: Span) -> Key:
    return tuple(token.text for token in span)


class _Lexicon:
    """Token strings, found in texts left to right, the longest at each place."""

    def __init__(self, strings: Iterable[Key]) -> None:
        self.strings = set(strings)
        lengths: Dict[str, set] = defaultdict(set)
        for key in self.strings:
            lengths[key[0]].add(len(key))
        # First token -> the lengths of the strings starting with it, longest first.
        self.lengths = {first: sorted(found, reverse=True) for first, found in lengths.items()}

    def matches(self, words: Sequence[str]) -> Iterator[Tuple[int, int, Key]]:
        """Non-overlapping occurrences in `words`: (start, end, key)."""
        i, n = 0, len(words)
        while i < n:
            end = i + 1
            for length in self.lengths.get(words[i], ()):
                key = tuple(words[i : i + length])
                if i + length <= n and key in self.strings:
                    yield i, i + length, key
                    end = i + length
                    break
            i = end

    def all_matches(self, words: Sequence[str]) -> Iterator[Tuple[int, int, Key]]:
        """Every occurrence in `words`, overlapping ones too: (start, end, key)."""
        n = len(words)
        for i in range(n):
            for length in self.lengths.get(words[i], ()):
                if i + length <= n:
                    key = tuple(words[i : i + length])
                    if key in self.strings:
                        yield i, i + length, key
