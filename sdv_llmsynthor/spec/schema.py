"""The JSON Schema of the spec, shipped inside the package, and JSON-path error reporting."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

SCHEMA_FILENAME = 'macro-spec.schema.json'
SUPPORTED_SPEC_VERSIONS = ('1.0', '1.1')


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """Load the spec's JSON Schema (2020-12) shipped with the package.

    Returns:
        dict:
            The schema. ``specs/macro-spec.schema.json`` in the repository is a link to this file.
    """
    text = resources.files('sdv_llmsynthor.spec').joinpath(SCHEMA_FILENAME).read_text('utf-8')
    return json.loads(text)


def json_path(parts: Iterable[Any]) -> str:
    """Render path parts as a JSON path such as ``$.tables.t.statistics[0].cells[2]``.

    Args:
        parts (Iterable):
            Keys (str) and list indices (int), outermost first.

    Returns:
        str:
            The JSON path.
    """
    path = '$'
    for part in parts:
        if isinstance(part, int):
            path += f'[{part}]'
        elif isinstance(part, str) and part.isidentifier():
            path += f'.{part}'
        else:
            path += f'[{json.dumps(part)}]'
    return path


def _describe(error: jsonschema.ValidationError) -> tuple[Sequence[Any], str]:
    if error.validator in ('oneOf', 'anyOf'):
        # "is not valid under any of the given schemas" says nothing: say what was expected.
        expected = error.schema.get('description') if isinstance(error.schema, dict) else None
        if expected:
            got = json.dumps(error.instance, default=str)
            if len(got) > 80:
                got = got[:77] + '...'
            return list(error.absolute_path), f'{got} is not allowed here. Expected: {expected}'
        deepest = best_match(error.context) if error.context else None
        if deepest is not None:
            return list(deepest.absolute_path), deepest.message
    return list(error.absolute_path), error.message


def schema_problems(spec_dict: Any) -> list[tuple[str, str]]:
    """Validate a spec dict against the JSON Schema and collect every problem.

    Args:
        spec_dict (Any):
            The decoded JSON document.

    Returns:
        list[tuple[str, str]]:
            ``(json_path, message)`` pairs, sorted by path; empty when the document is valid.
    """
    if isinstance(spec_dict, dict):
        version = spec_dict.get('spec_version')
        if version is not None and version not in SUPPORTED_SPEC_VERSIONS:
            return [(
                '$.spec_version',
                f'unsupported spec_version {version!r}; this version of sdv-llmsynthor reads '
                f'{", ".join(repr(v) for v in SUPPORTED_SPEC_VERSIONS)}. Upgrade sdv-llmsynthor '
                'or rewrite the spec in a supported version.',
            )]

    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for error in validator.iter_errors(spec_dict):
        path, message = _describe(error)
        problems.append((json_path(path), message))

    return sorted(set(problems))
