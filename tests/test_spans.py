"""The candidate span layout, written once in `spacy_binary_ner.spans`."""

import ast
from pathlib import Path

import numpy
import pytest
import torch

import spacy_binary_ner
from spacy_binary_ner.spans import cell_coordinates, n_span_cells, span_cells, span_index

MODELS = Path(spacy_binary_ner.__file__).parent / "models"


@pytest.mark.parametrize("lengths,max_span_length", [([1], 1), ([4, 1, 3], 3), ([2, 7], 10), ([5], 5)])
def test_span_index_has_the_rows_of_cell_coordinates(lengths, max_span_length):
    doc, start, end = span_index(torch.tensor(lengths), max_span_length)
    expected = []
    for i, n in enumerate(lengths):
        starts, widths = cell_coordinates(n, max_span_length)
        assert len(starts) == n_span_cells(n, max_span_length) == span_cells(n, max_span_length).sum()
        expected += [(i, s, s + w) for s, w in zip(starts.tolist(), widths.tolist())]
    assert list(zip(doc.tolist(), start.tolist(), end.tolist())) == expected


def test_cell_coordinates_of_an_empty_doc():
    starts, widths = cell_coordinates(0, 4)
    assert len(starts) == len(widths) == n_span_cells(0, 4) == 0
    assert numpy.array_equal(span_cells(0, 4), numpy.zeros((0, 4), dtype=bool))


def _imported_modules(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.rsplit(".", 1)[-1] for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(MODELS.rglob("*.py")), ids=lambda p: str(p.relative_to(MODELS)))
def test_architectures_do_not_import_the_loss(path):
    assert "targets" not in _imported_modules(path)
