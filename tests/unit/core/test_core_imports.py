"""The engine (``core/``) never imports the LLM layer (``llm/``)."""

import ast
from pathlib import Path

import sdv_llmsynthor.core

FORBIDDEN = ('sdv_llmsynthor.llm', 'sdv_llmsynthor.planners.anchored',
             'sdv_llmsynthor.planners.free')


def _imported_modules(path):
    tree = ast.parse(path.read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_modules__import_nothing_from_llm():
    # Setup
    folder = Path(sdv_llmsynthor.core.__file__).parent

    # Run
    offending = {
        path.name: module
        for path in folder.glob('*.py')
        for module in _imported_modules(path)
        if module.startswith(FORBIDDEN)
    }

    # Assert
    assert offending == {}
