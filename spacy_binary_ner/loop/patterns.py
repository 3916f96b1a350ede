"""Cold-start patterns: spaCy `EntityRuler` patterns whose matches become questions."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

from ..records import iter_jsonl


@dataclass(frozen=True)
class PatternSchedule:
    """When an `AnnotationLoop` asks about pattern matches.

    ratio (float): Share of the questions taken from pattern matches while
        they last and fewer than `until` answers came back.
    until (Optional[int]): Answers after which pattern matches are no longer
        asked; None to ask them while they last.
    skip_above (float): A pattern match the model already scores at least
        this high is not asked (the model has learned it); counted.
    max_answers (Optional[int]): Answers to a pattern's matches after which it
        is no longer asked, whatever they were: the model has its examples,
        and the same string asked again and again teaches it little. None for
        no limit.
    lookahead (int): Texts read ahead of the model to look for pattern
        matches: with a few patterns for a rare label, their matches are
        otherwise met only as fast as the model's questions use up the
        stream. The texts are kept and reach the model in order; a match is
        scored by the model when it is asked. 0: patterns see the texts as
        the model scores them.
    """

    ratio: float = 0.5
    until: Optional[int] = None
    skip_above: float = 0.9
    max_answers: Optional[int] = None
    lookahead: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise ValueError(f"the pattern ratio must be in [0, 1], not {self.ratio}")
        if self.lookahead < 0:
            raise ValueError(f"pattern_lookahead (texts read ahead) must be at least 0, not {self.lookahead}")


class PatternMatcher:
    """Match spaCy `EntityRuler` patterns: `{"label": "ORG", "pattern": "中国银行"}`
    (phrase, tokenized with the pipeline's tokenizer) or `{"label": "ORG",
    "pattern": [{"LOWER": "apple"}, ...]}` (token pattern).

    Unlike the `EntityRuler`, every match is kept, overlaps included: each is
    a question, and the rejected ones ("本科" inside "本科学历") teach the model
    where entities end.

    nlp (Language): Its vocab and tokenizer.
    patterns (Iterable[dict]): The patterns.
    phrase_matcher_attr (str): Token attribute phrase patterns match on.
    """

    def __init__(
        self,
        nlp: Language,
        patterns: Iterable[dict],
        *,
        phrase_matcher_attr: str = "ORTH",
    ) -> None:
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
                    raise ValueError(
                        f"Pattern {i} ({str(pattern)[:80]}) is not a valid Matcher pattern: {err}"
                    ) from None
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
        return list(unique.values())
