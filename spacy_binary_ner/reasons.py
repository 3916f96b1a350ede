"""Why a teach record, or one of its spans, is not used: the reasons the
reader counts, each with its fix, and the error that carries one."""

from typing import Dict

# Record-level reasons are decided when a record is read; span-level reasons
# when its sentence is built.
REASONS: Dict[str, str] = {
    "unreadable file": "the file could not be read on from here (a damaged or truncated .gz, a .gz that is not "
    "gzip, or UTF-16 text): the records before this line were read; re-export or re-compress the file, as UTF-8",
    "not UTF-8": "save the file as UTF-8 (e.g. iconv -f latin1 -t utf8); the line is not valid UTF-8",
    "lone surrogate": "the text holds half of a UTF-16 surrogate pair (a \\ud800-\\udfff escape with no partner), "
    "i.e. a character cut in half by the exporter: fix the export",
    "malformed JSON": "fix or delete the line: it is not valid JSON",
    "not an object": "each line must be one JSON object ({...})",
    "missing key": "add the key (`text`; `answer` in a teach file, or read the file as complete)",
    "bad field": "fix the field's type: `text` a string, `spans` a list of {start, end, label} "
    "with integer character offsets inside the text and a label with no whitespace at its ends, `answer` a "
    "string, `_input_hash` an integer",
    "bad tokens": "`tokens` must be {text, start, end} objects in order, inside the text, "
    "not overlapping; or drop `tokens` to use the pipeline's tokenizer",
    "tokens disagree with text": "each token's `text` must be `text[start:end]` of the record: fix the offsets "
    "(code points, as Python counts; offsets = utf16 for UTF-16 code units), or drop `tokens`",
    "tokens leave out text": "the `tokens`, each followed by one space where `text` has one, must spell `text` "
    "exactly (as a spaCy Doc does): any other character between, before or after them (a word, a second space, "
    "a newline) needs a token of its own; or drop `tokens`",
    "whitespace disagrees with text": "a token's `ws` must say whether a space follows it in `text`: fix `ws`, "
    "or leave it out (the text says it)",
    "span text mismatch": "a span's `text` must be `text[start:end]` of the record: fix the offsets "
    "(code points, as Python counts; offsets = utf16 for UTF-16 code units, as JavaScript counts)",
    "span disagrees with tokens": "a span's `token_start` / `token_end` must be the tokens that its `start` / `end` "
    "begin and end (`token_end` inclusive): fix them, or leave them out",
    "non-finite number": "NaN and Infinity are not standard JSON, and nothing the package writes may hold them: "
    "write null or a number",
    "empty text": "drop the record, or give it a text",
    "unknown answer": "`answer` must be accept, reject or ignore",
    "ignore answer": "none needed: ignored answers carry no information",
    "no spans": "a teach answer needs the span it answers; a text with no entities belongs in a complete file",
    "rejected complete annotation": "a rejected manual annotation says nothing reliable; "
    "drop it, or set its answer to accept",
    "input hash clash": "two different texts share one `_input_hash`; fix the hash or drop one",
    "duplicate answer": "none needed: the same answer was given earlier and is kept once",
    "conflicting answers": "the later answer was kept; drop the answer that is wrong",
    "overlapping accept": "entities are flat: the later accept was kept; drop the other",
    "misaligned span": "offsets must sit on token boundaries: fix them, pass the tokens used "
    "when annotating, or use alignment = expand / contract",
    "unknown label": "add the label to `labels`, or drop the span",
    "spaCy v2 label": "spaCy v3 has no negated labels: a span that is not LABEL is a span with label LABEL "
    "and answer reject",
    "no tokens": "the tokenizer found no tokens in the text",
    "text too long": "raise `max_length`, or use long_texts = split",
    "span cut by split": "raise `max_length`: this span crosses every possible cut",
}
# What the reader warns about, with both counts in the account, but uses
# (an error in strict mode).
WARNINGS: Dict[str, str] = {
    "labels differ only in case": "labels are case-sensitive: PER and per train two labels; "
    "rename one of them if they mean the same (`labels` in the config keeps only the one named there)",
}
# Reasons that are no fault of the data: never an error in strict mode.
HARMLESS_REASONS = frozenset({"ignore answer"})
# Reasons that are an error even when not strict: read as labels, they would train the wrong thing.
FATAL_REASONS = frozenset({"spaCy v2 label"})


class RecordError(ValueError):
    """A record (or one of its spans) that cannot be used, and why.

    reason (str): One of `REASONS`.
    detail (str): What exactly is wrong, for the message.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason = reason
        self.detail = detail
