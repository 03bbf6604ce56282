r"""A scripted LLM client for tests: no model, no network, same validation and accounting.

Example:
    >>> from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply
    >>> client = ScriptedClient([
    ...     {'city': 'Lyon'},                      # a valid object, serialized as the reply
    ...     'not json at all',                     # invalid: triggers the re-ask...
    ...     '```json\n{"city": "Nice"}\n```',      # ...which this fenced reply answers
    ...     ScriptedReply(refusal='I cannot help with that.'),
    ...     TimeoutError('boom'),                  # raised as is
    ... ])

Each call to ``complete_json`` consumes one scripted item per request sent (a re-ask consumes
the next item), so a test scripts exactly what a real endpoint would have answered. Replies go
through the same JSON extraction, schema validation, re-ask, cache and usage accounting as the
real clients, so a planner tested with it counts discards exactly as in production.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sdv_llmsynthor.llm.base import LLMClient
from sdv_llmsynthor.llm.structured import RawCompletion, canonical_json


@dataclass
class ScriptedReply:
    """A scripted reply with full control over what the fake endpoint returns.

    Args:
        text (str or None):
            The reply content. ``None`` with ``data`` set serializes ``data``.
        data (dict or None):
            An object to serialize as the reply.
        refusal (str or None):
            A refusal message (the client raises ``LLMRefusalError``).
        finish_reason (str):
            ``'stop'`` by default; ``'content_filter'`` is a refusal, ``'length'`` a cut reply.
        prompt_tokens (int or None):
            Tokens to account; ``None`` estimates 1 token per 4 characters of the prompt.
        completion_tokens (int or None):
            Tokens to account; ``None`` estimates 1 token per 4 characters of the reply.
    """

    text: str | None = None
    data: dict[str, Any] | None = None
    refusal: str | None = None
    finish_reason: str = 'stop'
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ScriptedClient(LLMClient):
    """An :class:`LLMClient` that replays scripted replies and records every request.

    Args:
        responses (iterable or callable):
            Either a sequence consumed in order, one item per request sent, each a ``dict``
            (serialized to JSON), a ``str`` (the raw reply text), a :class:`ScriptedReply`, or
            an exception instance (raised by the request); or a callable
            ``responses(messages, schema, params)`` returning one such item per request.
        model (str):
            The model name reported. Defaults to ``'scripted'``.
        cache_dir (str or None):
            Folder of the on-disk response cache. ``None`` disables it.
        max_concurrency (int):
            Parallel requests in ``map_complete_json``. Defaults to 1.
        max_reasks (int):
            Re-asks after an invalid reply. Defaults to 1.

    Attributes:
        calls (list[dict]):
            One ``{'messages', 'schema', 'params'}`` dict per request sent (re-asks included),
            deep copies taken at request time.
    """

    def __init__(
        self,
        responses: Iterable[Any] | Callable[..., Any],
        model: str = 'scripted',
        cache_dir: str | None = None,
        max_concurrency: int = 1,
        max_reasks: int = 1,
    ) -> None:
        super().__init__(
            model=model, cache_dir=cache_dir, max_concurrency=max_concurrency,
            max_reasks=max_reasks,
        )
        self._responder = responses if callable(responses) else None
        self._script = None if callable(responses) else list(responses)
        self._position = 0
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        """int or None: Scripted items not consumed yet (``None`` for a callable script)."""
        if self._script is None:
            return None

        with self._lock:
            return len(self._script) - self._position

    def describe(self) -> str:
        """Return a one-line description of the scripted client.

        Returns:
            str:
                The model name and how many requests were recorded.
        """
        return f'scripted test client (model {self.model!r}, {len(self.calls)} requests so far)'

    def _cache_endpoint(self) -> str:
        return 'scripted'

    def _next_item(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        with self._lock:
            self.calls.append({
                'messages': copy.deepcopy(messages),
                'schema': copy.deepcopy(schema),
                'params': dict(params),
            })
            if self._responder is not None:
                return None, True

            if self._position >= len(self._script):
                raise RuntimeError(
                    f'ScriptedClient ran out of scripted replies after {self._position} requests.'
                )

            item = self._script[self._position]
            self._position += 1
            return item, False

    def _send(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> RawCompletion:
        item, from_callable = self._next_item(messages, schema, params)
        if from_callable:
            item = self._responder(copy.deepcopy(messages), schema, dict(params))

        if isinstance(item, BaseException):
            raise item

        if isinstance(item, dict):
            item = ScriptedReply(data=item)
        elif isinstance(item, str):
            item = ScriptedReply(text=item)
        elif not isinstance(item, ScriptedReply):
            raise TypeError(
                'Scripted replies must be dicts, strings, ScriptedReply or exceptions. Got '
                f'{type(item).__name__} instead.'
            )

        text = item.text
        if text is None:
            text = '' if item.data is None else json.dumps(item.data)

        prompt_tokens = item.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = max(1, len(canonical_json(messages)) // 4)

        completion_tokens = item.completion_tokens
        if completion_tokens is None:
            completion_tokens = max(1, len(text) // 4) if text else 0

        return RawCompletion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            mode='scripted',
            refusal=item.refusal,
            finish_reason=item.finish_reason,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop('_lock', None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
