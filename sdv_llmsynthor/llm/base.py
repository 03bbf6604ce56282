"""The interface every LLM client implements, and the response it returns."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sdv_llmsynthor.llm.cache import ResponseCache
from sdv_llmsynthor.llm.structured import (
    RawCompletion,
    get_validator,
    normalize_messages,
    normalize_params,
    run_structured_completion,
)
from sdv_llmsynthor.llm.usage import UsageTracker

LOGGER = logging.getLogger(__name__)


@dataclass
class LLMResponse:
    """A schema-valid JSON object returned by an LLM client.

    Args:
        data (dict):
            The parsed JSON object; it satisfies the schema of the request.
        usage (dict):
            ``{'prompt_tokens': int, 'completion_tokens': int}`` spent by this call (re-asks
            included; zeros for a cached response).
        cached (bool):
            Whether the response came from the on-disk cache.
        model (str):
            The model that wrote it.
        mode (str):
            The structured-output mode used: ``'json_schema'``, ``'json_object'``, ``'text'``,
            ``'grammar'`` (embedded model) or ``'scripted'``.
    """

    data: dict[str, Any]
    usage: dict[str, int] = field(
        default_factory=lambda: {'prompt_tokens': 0, 'completion_tokens': 0}
    )
    cached: bool = False
    model: str = ''
    mode: str = ''


class LLMClient(abc.ABC):
    """Base class of the LLM clients: structured JSON completions, accounted and cached.

    Subclasses implement :meth:`_send` (one request, one raw reply) and :meth:`describe`. This
    class does the rest, the same way for every backend: argument checks, the on-disk cache,
    JSON extraction, schema validation, one re-ask quoting the problem, usage accounting and
    bounded-concurrency batches.

    Errors a caller should expect from :meth:`complete_json`:

    - ``LLMOutputError`` (and its subclass ``LLMRefusalError``): the reply was unusable. Count
      it with ``client.usage.record_discard(error.discard_reason)`` and move on.
    - ``LLMTransportError``: the endpoint kept failing after every retry.
    - ``LLMRequestError``: the endpoint rejected the request (authentication, unknown model).

    Args:
        model (str):
            The model name.
        cache_dir (str or pathlib.Path or None):
            Folder of the response cache. ``None`` disables caching.
        max_concurrency (int):
            Default number of parallel requests in :meth:`map_complete_json`.
        max_reasks (int):
            Re-asks after an invalid reply before giving up. Defaults to 1.
        cost_per_1k_prompt (float or None):
            Price of 1,000 prompt tokens, for ``usage.cost``.
        cost_per_1k_completion (float or None):
            Price of 1,000 completion tokens, for ``usage.cost``.
    """

    def __init__(
        self,
        model: str,
        cache_dir: str | None = None,
        max_concurrency: int = 1,
        max_reasks: int = 1,
        cost_per_1k_prompt: float | None = None,
        cost_per_1k_completion: float | None = None,
    ) -> None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(
                "The 'max_concurrency' parameter must be a positive integer. "
                f'Got {max_concurrency!r} instead.'
            )

        self.model = model
        self.cache_dir = cache_dir
        self.cache = None if cache_dir is None else ResponseCache(cache_dir)
        self.max_concurrency = max_concurrency
        self.max_reasks = max_reasks
        self.usage = UsageTracker(
            model=model,
            cost_per_1k_prompt=cost_per_1k_prompt,
            cost_per_1k_completion=cost_per_1k_completion,
        )

    @abc.abstractmethod
    def _send(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> RawCompletion:
        """Send one chat completion request and return the raw reply.

        Args:
            messages (list[dict]):
                The messages (a copy the method may not keep).
            schema (dict):
                The JSON Schema the reply should follow.
            params (dict):
                Sampling parameters (already checked).

        Returns:
            RawCompletion:
                The reply text, tokens and mode.
        """

    @abc.abstractmethod
    def describe(self) -> str:
        """Return a one-line human description of the backend (never containing a secret).

        Returns:
            str:
                For example ``"OpenAI-compatible endpoint api.openai.com, model 'gpt-4.1-nano'"``.
        """

    def _cache_endpoint(self) -> str:
        """Return the endpoint part of cache keys (a host name, never credentials)."""
        return ''

    def _default_params(self) -> dict[str, Any]:
        """Return sampling parameters applied when the caller does not set them."""
        return {}

    def complete_json(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], **params: Any
    ) -> LLMResponse:
        """Ask the model for one JSON object that satisfies ``schema``.

        Args:
            messages (list[dict]):
                Chat messages, ``{'role': 'system' | 'user' | 'assistant', 'content': str}``.
                The list is not modified.
            schema (dict):
                A JSON Schema for the reply.
            **params:
                Sampling parameters: ``temperature``, ``max_tokens``, ``seed``, ``top_p``.

        Returns:
            LLMResponse:
                The valid object, its token usage, whether it was cached, the model and mode.

        Raises:
            LLMOutputError:
                If the reply is not a valid object after the re-ask.
            LLMRefusalError:
                If the model refused.
            LLMRequestError:
                If the endpoint rejected the request or kept failing.
        """
        messages = normalize_messages(messages)
        get_validator(schema)
        call_params = {**self._default_params(), **normalize_params(params)}
        call_params = {name: call_params[name] for name in sorted(call_params)}

        key = None
        if self.cache is not None:
            key = self.cache.make_key(
                self.model, self._cache_endpoint(), messages, schema, call_params
            )
            entry = self.cache.get(key, schema)
            if entry is not None:
                self.usage.record_cached()
                return LLMResponse(
                    data=entry['data'],
                    usage={'prompt_tokens': 0, 'completion_tokens': 0},
                    cached=True,
                    model=self.model,
                    mode=str(entry.get('mode', '')),
                )

        result = run_structured_completion(
            self._send, messages, schema, call_params, self.usage, max_reasks=self.max_reasks
        )
        if key is not None:
            self.cache.put(
                key, result.data, result.mode, result.prompt_tokens, result.completion_tokens
            )

        return LLMResponse(
            data=result.data,
            usage={
                'prompt_tokens': result.prompt_tokens,
                'completion_tokens': result.completion_tokens,
            },
            cached=False,
            model=self.model,
            mode=result.mode,
        )

    def map_complete_json(
        self,
        requests: Sequence[tuple[Any, ...]],
        max_concurrency: int | None = None,
    ) -> list[LLMResponse | Exception]:
        """Run independent :meth:`complete_json` calls with bounded concurrency.

        Args:
            requests (list[tuple]):
                ``(messages, schema)`` or ``(messages, schema, params)`` tuples, ``params`` a
                dict of sampling parameters.
            max_concurrency (int or None):
                Parallel requests at most. Defaults to the client's ``max_concurrency``.

        Returns:
            list:
                One item per request, in the same order: an ``LLMResponse``, or the exception
                that request raised (returned, not raised, so one bad call loses nothing else).
        """
        workers = self.max_concurrency if max_concurrency is None else max_concurrency
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(
                "The 'max_concurrency' parameter must be a positive integer. "
                f'Got {workers!r} instead.'
            )

        def run_one(request: tuple[Any, ...]) -> LLMResponse | Exception:
            try:
                if not isinstance(request, (tuple, list)) or len(request) not in (2, 3):
                    raise ValueError(
                        'Each request must be a (messages, schema) or (messages, schema, params) '
                        'tuple.'
                    )

                params = request[2] if len(request) == 3 else None
                return self.complete_json(request[0], request[1], **(params or {}))
            except Exception as error:  # noqa: BLE001 - returned to the caller by design
                return error

        requests = list(requests)
        if workers == 1 or len(requests) <= 1:
            return [run_one(request) for request in requests]

        with ThreadPoolExecutor(max_workers=min(workers, len(requests))) as pool:
            return list(pool.map(run_one, requests))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(model={self.model!r})'
