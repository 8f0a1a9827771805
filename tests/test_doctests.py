"""The examples in the public operators' docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dstreams.core.rdd",
    "dstreams.core.pairs",
    "dstreams.core.actions",
    "dstreams.core.numeric",
    "dstreams.core.context",
    "dstreams.conf",
    "dstreams.hashing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(sc, name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs={**vars(module), "sc": sc}) if t.examples]
    assert tests, f"{name} has no examples"
    for t in tests:
        if any("with Context(" in ex.source for ex in t.examples):
            continue  # these start their own Context; the shared one is already running
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
