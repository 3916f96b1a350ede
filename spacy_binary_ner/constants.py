"""Names shared by the pipe, the reader and the loop (no imports: anything may import this)."""

# Key of the rejected spans in `reference.spans`, as spaCy's `ner` names it.
DEFAULT_INCORRECT_SPANS_KEY = "incorrect_spans"
# Span group of every candidate span and label with its probability.
DEFAULT_SCORES_KEY = "binary_ner_scores"
# The answers a teach record may carry.
ANSWERS = ("accept", "reject", "ignore")
# Span group of weak entities: accepted strings found again in other answered texts.
DEFAULT_WEAK_SPANS_KEY = "binary_ner_weak"
# Span group of a reference doc annotated completely for some labels only
# (`"complete": [labels]`): each span is a run of tokens and a label such
# that every span of that label inside the run is known.
COMPLETE_LABELS_KEY = "binary_ner_complete"
