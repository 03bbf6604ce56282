"""Structured output shared by every client: JSON extraction, light repair, schema check, re-ask.

LLM output is never trusted. :func:`run_structured_completion` sends a request, extracts a
JSON object from the reply, validates it against the caller's JSON Schema and, when the reply
is unusable, asks once more quoting what was wrong (the instructor pattern). The caller's
message list is never mutated.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from sdv_llmsynthor.errors import LLMOutputError, LLMRefusalError
from sdv_llmsynthor.llm.usage import UsageTracker

#: Sampling parameters accepted by ``complete_json``.
SAMPLING_PARAMS = ('temperature', 'max_tokens', 'seed', 'top_p')

#: Longest raw reply kept in errors and re-ask messages.
MAX_QUOTED_CHARS = 2000

_VALID_ROLES = {'system', 'user', 'assistant', 'developer'}
_FENCE = re.compile(r'```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```', re.DOTALL)
_TRAILING_COMMA = re.compile(r',(\s*[}\]])')


@dataclass
class RawCompletion:
    """One reply of an LLM backend, before any parsing.

    Args:
        text (str):
            The message content.
        prompt_tokens (int):
            Tokens read.
        completion_tokens (int):
            Tokens written.
        mode (str):
            The structured-output mode used (``'json_schema'``, ``'json_object'``, ``'text'``...).
        refusal (str or None):
            The refusal message, if the model refused.
        finish_reason (str or None):
            Why generation stopped (``'stop'``, ``'length'``, ``'content_filter'``...).
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mode: str = 'text'
    refusal: str | None = None
    finish_reason: str | None = None


@dataclass
class StructuredResult:
    """A validated JSON object and what it cost.

    Args:
        data (dict):
            The parsed object, valid against the schema.
        mode (str):
            The structured-output mode of the reply that was accepted.
        prompt_tokens (int):
            Prompt tokens over every attempt.
        completion_tokens (int):
            Completion tokens over every attempt.
        attempts (int):
            Completions requested (1 plus the re-asks).
    """

    data: dict[str, Any]
    mode: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    raw_texts: list[str] = field(default_factory=list)


class _InvalidOutput(Exception):
    """Internal: a reply that cannot be used, with the discard reason."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def truncate(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """Shorten ``text`` to at most ``limit`` characters, marking the cut.

    Args:
        text (str):
            Any text.
        limit (int):
            The maximum length.

    Returns:
        str:
            The text, or its head followed by ``'... [N more characters]'``.
    """
    text = '' if text is None else str(text)
    if len(text) <= limit:
        return text

    return f'{text[:limit]}... [{len(text) - limit} more characters]'


def canonical_json(value: Any) -> str:
    """Serialize ``value`` deterministically (sorted keys, no spaces, UTF-8 kept).

    Args:
        value:
            Any JSON-serializable value.

    Returns:
        str:
            The canonical JSON text.
    """
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _validator_for_text(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError as error:
        raise ValueError(
            f"The 'schema' parameter is not a valid JSON Schema: {error.message}"
        ) from None

    return validator_class(schema)


def get_validator(schema: dict[str, Any]) -> Any:
    """Return a (cached) jsonschema validator for ``schema``, checking the schema itself.

    Args:
        schema (dict):
            A JSON Schema.

    Returns:
        jsonschema validator:
            A validator of the draft the schema declares (2020-12 by default).

    Raises:
        ValueError:
            If ``schema`` is not a dict or not a valid JSON Schema.
    """
    if not isinstance(schema, dict):
        raise ValueError(
            f"The 'schema' parameter must be a JSON Schema dict. Got {type(schema).__name__} "
            'instead.'
        )

    return _validator_for_text(canonical_json(schema))


def _format_path(path: Sequence[Any]) -> str:
    parts = ['$']
    for item in path:
        parts.append(f'[{item}]' if isinstance(item, int) else f'.{item}')

    return ''.join(parts)


def schema_errors(data: Any, schema: dict[str, Any], max_errors: int = 5) -> list[str]:
    """List why ``data`` does not satisfy ``schema``.

    Args:
        data:
            A parsed JSON value.
        schema (dict):
            A JSON Schema.
        max_errors (int):
            How many problems to describe at most.

    Returns:
        list[str]:
            ``'<json path>: <problem>'`` strings, empty when ``data`` is valid.
    """
    validator = get_validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda err: list(map(str, err.absolute_path)))
    messages = [
        f'{_format_path(err.absolute_path)}: {truncate(err.message, 200)}'
        for err in errors[:max_errors]
    ]
    if len(errors) > max_errors:
        messages.append(f'... and {len(errors) - max_errors} more problems')

    return messages


def _first_balanced_object(text: str) -> str | None:
    """Return the first balanced ``{...}`` block of ``text``, aware of JSON strings."""
    start = text.find('{')
    while start != -1:
        depth = 0
        in_string = None
        escaped = False
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == '\\':
                    escaped = True
                elif char == in_string:
                    in_string = None
            elif char in ('"', "'"):
                # Single-quoted strings only matter for the repair step; tracking them keeps a
                # brace inside 'a}b' from closing the block.
                in_string = char
            elif char == '{':
                depth += 1
            elif char == '}':
                depth -= 1
                if depth == 0:
                    return text[start:index + 1]

        start = text.find('{', start + 1)

    return None


def _remove_trailing_commas(text: str) -> str:
    """Drop commas directly before ``}`` or ``]`` outside of strings."""
    result = []
    in_string = False
    escaped = False
    index = 0
    while index < len(text):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == ',':
            match = _TRAILING_COMMA.match(text, index)
            if match:
                index += 1
                continue

        result.append(char)
        index += 1

    return ''.join(result)


def _repair_candidates(block: str) -> list[str]:
    """Light, unambiguous repairs of a JSON-like block, in the order they are tried."""
    candidates = [block]
    without_commas = _remove_trailing_commas(block)
    if without_commas != block:
        candidates.append(without_commas)

    # Single quotes become double quotes only when the text has no double quote at all:
    # then every single quote delimits a string and the swap cannot change the meaning
    # (an apostrophe inside a value would make the result unparseable, never wrong).
    if "'" in block and '"' not in block:
        swapped = block.replace("'", '"')
        candidates.append(swapped)
        candidates.append(_remove_trailing_commas(swapped))

    return candidates


def extract_json_object(text: str) -> dict[str, Any]:
    """Find and parse the JSON object in an LLM reply.

    Tries, in order: the whole text; the content of a fenced ```` ```json ```` block; the first
    balanced ``{...}`` block. Each candidate is parsed as is, then after light repairs that
    cannot change its meaning: trailing commas removed, and single quotes turned into double
    quotes when the text contains no double quote.

    Args:
        text (str):
            The raw reply.

    Returns:
        dict:
            The parsed object.

    Raises:
        ValueError:
            If no JSON object can be found.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError('the reply is empty')

    stripped = text.strip()
    blocks = [stripped]
    blocks.extend(match.group(1).strip() for match in _FENCE.finditer(stripped))
    for source in list(blocks):
        block = _first_balanced_object(source)
        if block is not None and block not in blocks:
            blocks.append(block)

    first_error = None
    for block in blocks:
        for candidate in _repair_candidates(block):
            try:
                value = json.loads(candidate)
            except json.JSONDecodeError as error:
                first_error = first_error or error
                continue

            if isinstance(value, dict):
                return value

    if first_error is not None and '{' in stripped:
        raise ValueError(f'the reply is not valid JSON ({first_error.msg} at character '
                         f'{first_error.pos})')

    raise ValueError('the reply contains no JSON object')


def parse_and_validate(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Extract the JSON object of ``text`` and check it against ``schema``.

    Args:
        text (str):
            The raw reply.
        schema (dict):
            A JSON Schema.

    Returns:
        dict:
            The valid object.

    Raises:
        _InvalidOutput:
            With reason ``'invalid_json'`` or ``'schema_violation'``.
    """
    try:
        data = extract_json_object(text)
    except ValueError as error:
        raise _InvalidOutput(str(error), 'invalid_json') from None

    problems = schema_errors(data, schema)
    if problems:
        raise _InvalidOutput(
            'the JSON does not follow the schema: ' + '; '.join(problems), 'schema_violation'
        )

    return data


def schema_instruction(schema: dict[str, Any]) -> str:
    """Return the system-prompt text that asks for a JSON object following ``schema``.

    Args:
        schema (dict):
            A JSON Schema.

    Returns:
        str:
            The instruction, with the schema as compact JSON.
    """
    return (
        'Reply with one JSON object and nothing else (no prose, no code fences). '
        'It must be valid against this JSON Schema:\n' + canonical_json(schema)
    )


def with_system_text(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Return a copy of ``messages`` whose system message ends with ``text``.

    A system message is added at the front when there is none. ``messages`` is not modified.

    Args:
        messages (list[dict]):
            Chat messages.
        text (str):
            Text to add.

    Returns:
        list[dict]:
            New messages.
    """
    result = [dict(message) for message in messages]
    if result and result[0].get('role') == 'system':
        result[0]['content'] = f"{result[0].get('content') or ''}\n\n{text}".strip()
    else:
        result.insert(0, {'role': 'system', 'content': text})

    return result


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Check chat messages and return a deep copy the clients may extend freely.

    Args:
        messages (list[dict]):
            ``{'role': ..., 'content': ...}`` dicts.

    Returns:
        list[dict]:
            A deep copy.

    Raises:
        ValueError:
            If ``messages`` is empty or a message is malformed.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError(
            "The 'messages' parameter must be a non-empty list of {'role': ..., 'content': ...} "
            f'dicts. Got {type(messages).__name__} instead.'
        )

    for index, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get('role') not in _VALID_ROLES
            or not isinstance(message.get('content'), str)
        ):
            raise ValueError(
                f"Message {index} must be a dict with a 'role' in {sorted(_VALID_ROLES)} and a "
                "string 'content'."
            )

    return copy.deepcopy(list(messages))


def normalize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check the sampling parameters of ``complete_json`` and drop the ``None`` ones.

    Args:
        params (dict):
            Any of ``temperature``, ``max_tokens``, ``seed``, ``top_p``.

    Returns:
        dict:
            The parameters that are set, sorted by name.

    Raises:
        TypeError:
            If an unknown parameter is given.
    """
    unknown = sorted(set(params) - set(SAMPLING_PARAMS))
    if unknown:
        raise TypeError(
            f'Unknown sampling parameters {unknown}: complete_json accepts {list(SAMPLING_PARAMS)}.'
        )

    return {name: params[name] for name in sorted(params) if params[name] is not None}


def build_reask_messages(
    messages: list[dict[str, Any]], raw_text: str, problem: str
) -> list[dict[str, Any]]:
    """Return ``messages`` followed by the invalid reply and a request to fix it.

    Args:
        messages (list[dict]):
            The messages of the failed attempt (not modified).
        raw_text (str):
            The invalid reply.
        problem (str):
            What was wrong with it.

    Returns:
        list[dict]:
            New messages.
    """
    return [dict(message) for message in messages] + [
        {'role': 'assistant', 'content': truncate(raw_text)},
        {
            'role': 'user',
            'content': (
                f'Your reply could not be used: {problem}. Reply again with only one JSON object '
                'that follows the schema exactly.'
            ),
        },
    ]


def run_structured_completion(
    send: Callable[[list[dict[str, Any]], dict[str, Any], dict[str, Any]], RawCompletion],
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    params: dict[str, Any],
    usage: UsageTracker,
    max_reasks: int = 1,
) -> StructuredResult:
    """Request a completion until it yields a schema-valid JSON object, re-asking on failure.

    Every answered request is counted in ``usage`` (``llm_calls`` and tokens), every re-ask in
    ``usage.reasks``. Discards are not counted here: the caller catches the error and counts it
    under ``error.discard_reason``.

    Args:
        send (callable):
            ``send(messages, schema, params) -> RawCompletion``; transport errors propagate.
        messages (list[dict]):
            The caller's messages (never modified).
        schema (dict):
            The JSON Schema the object must satisfy.
        params (dict):
            Sampling parameters passed to ``send``.
        usage (UsageTracker):
            Where calls and tokens are counted.
        max_reasks (int):
            How many times to re-ask after an invalid reply. Defaults to 1.

    Returns:
        StructuredResult:
            The valid object and its cost.

    Raises:
        LLMRefusalError:
            If the model refused or a content filter stopped it.
        LLMOutputError:
            If the last reply is still unusable.
    """
    current = [dict(message) for message in messages]
    prompt_tokens = completion_tokens = 0
    raw_texts = []
    attempts = 0
    while True:
        attempts += 1
        raw = send(current, schema, dict(params))
        usage.record_call(raw.prompt_tokens, raw.completion_tokens)
        prompt_tokens += raw.prompt_tokens
        completion_tokens += raw.completion_tokens
        raw_texts.append(raw.text or '')

        if raw.refusal or raw.finish_reason == 'content_filter':
            said = raw.refusal or f'finish_reason={raw.finish_reason!r}'
            raise LLMRefusalError(
                f'The model refused to answer: {truncate(said, 300)}',
                attempts=attempts,
                last_text=truncate(raw.refusal or raw.text or ''),
            )

        try:
            data = parse_and_validate(raw.text or '', schema)
        except _InvalidOutput as invalid:
            problem = str(invalid)
            if raw.finish_reason == 'length':
                problem += ' (the reply was cut off at max_tokens)'

            if attempts > max_reasks:
                raise LLMOutputError(
                    f'The model did not return a valid JSON object after {attempts} attempt(s): '
                    f'{problem}',
                    attempts=attempts,
                    last_text=truncate(raw.text or ''),
                    discard_reason=invalid.reason,
                ) from None

            usage.record_reask()
            current = build_reask_messages(current, raw.text or '', problem)
            continue

        return StructuredResult(
            data=data,
            mode=raw.mode,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=attempts,
            raw_texts=raw_texts,
        )
