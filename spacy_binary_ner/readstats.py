"""The account of a read: what became of every record, by named reason.

Every record read ends up either used or skipped under one named reason (see
`records.REASONS`), counted per source in a `ReadStats`; with `strict=True`
any skip but an "ignore" answer raises a `TeachDataError`.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List

# How many places of each reason an account keeps.
MAX_WHERE = 5


class TeachDataError(ValueError):
    """A record was skipped while reading in strict mode."""


@dataclass
class ReadStats:
    """An account of the records read from one source (or all of them).

    records (int): Records read (non-blank lines, valid JSON or not).
    used (int): Records that contributed to an example; `used + sum(skipped)`
        always equals `records`.
    merged (int): Used records that joined an example begun by an earlier one.
    examples (int): Examples made (more than `used - merged` if texts were split).
    skipped (Counter): Skipped records, by reason (see `REASONS`).
    spans (Counter): Spans of the records: "read", "used", and dropped ones by reason.
    labels (Counter): Spans read, by label (labels are case-sensitive; see
        `labels_differing_in_case`).
    changed (Counter): What was adjusted: "span expanded", "span contracted",
        "text split" (texts), "split pieces" (the examples they became).
    where (Dict[str, List[str]]): For each reason, where its first few cases are
        (`file:line`, or `record N` for records given in memory).
    """

    records: int = 0
    examples: int = 0
    used: int = 0
    merged: int = 0
    skipped: Counter = field(default_factory=Counter)
    spans: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    where: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def reasons(self) -> Counter:
        """Every count but records/used/merged/examples in one Counter: record
        skips as "skipped: REASON", dropped spans as "span skipped: REASON"."""
        out: Counter = Counter()
        for reason, count in self.skipped.items():
            out[f"skipped: {reason}"] += count
        for reason, count in self.spans.items():
            if reason not in ("read", "used"):
                out[f"span skipped: {reason}"] += count
        out.update(self.changed)
        return out

    @property
    def labels_differing_in_case(self) -> List[Dict[str, int]]:
        """Labels read that differ only in case, each group with the spans
        read of each label, e.g. `[{"PER": 10, "per": 2}]`."""
        groups: Dict[str, Dict[str, int]] = {}
        for label, count in sorted(self.labels.items()):
            groups.setdefault(label.lower(), {})[label] = count
        return [group for _, group in sorted(groups.items()) if len(group) > 1]

    def add(self, other: "ReadStats") -> None:
        """Add another account's counts to this one."""
        self.records += other.records
        self.examples += other.examples
        self.used += other.used
        self.merged += other.merged
        self.skipped.update(other.skipped)
        self.spans.update(other.spans)
        self.labels.update(other.labels)
        self.changed.update(other.changed)
        for reason, places in other.where.items():
            mine = self.where.setdefault(reason, [])
            mine.extend(places[: MAX_WHERE - len(mine)])

    def to_dict(self) -> Dict[str, Any]:
        """The account as a JSON-serializable dict."""
        return {
            "records": self.records,
            "used": self.used,
            "merged": self.merged,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "examples": self.examples,
            "spans": dict(sorted(self.spans.items())),
            "labels": dict(sorted(self.labels.items())),
            "labels_differing_in_case": self.labels_differing_in_case,
            "changed": dict(sorted(self.changed.items())),
            "where": {k: list(v) for k, v in sorted(self.where.items())},
        }

    def __str__(self) -> str:
        parts = [
            f"{self.records} records: {self.used} used ({self.merged} merged), "
            f"{sum(self.skipped.values())} skipped -> {self.examples} examples"
        ]
        parts += [f"skipped {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        parts += [f"{name}: {count}" for name, count in sorted(self.changed.items())]
        parts += [
            "labels differing only in case: " + " / ".join(f"{label} {n}" for label, n in group.items())
            for group in self.labels_differing_in_case
        ]
        return "; ".join(parts)


__all__ = ["MAX_WHERE", "ReadStats", "TeachDataError"]
