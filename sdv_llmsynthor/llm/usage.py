"""Thread-safe accounting of LLM calls, tokens, cache hits, discards and cost."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_STATE_VERSION = 1


class UsageTracker:
    """Count what an LLM client did during a run.

    Every client owns one (``client.usage``). A synthesizer's ``get_usage()`` returns
    :meth:`as_dict`. All methods may be called from several threads at once.

    Args:
        model (str):
            The model name reported with the counts.
        cost_per_1k_prompt (float or None):
            Price of 1,000 prompt tokens, in any currency. ``None`` if unknown.
        cost_per_1k_completion (float or None):
            Price of 1,000 completion tokens. ``None`` if unknown.
    """

    def __init__(
        self,
        model: str = '',
        cost_per_1k_prompt: float | None = None,
        cost_per_1k_completion: float | None = None,
    ) -> None:
        self.model = model
        self.cost_per_1k_prompt = cost_per_1k_prompt
        self.cost_per_1k_completion = cost_per_1k_completion
        self.llm_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_calls = 0
        self.retries = 0
        self.reasks = 0
        self.discarded: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record_call(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Count one completion the endpoint answered, and its tokens.

        Args:
            prompt_tokens (int):
                Tokens read by the model.
            completion_tokens (int):
                Tokens written by the model.
        """
        with self._lock:
            self.llm_calls += 1
            self.prompt_tokens += int(prompt_tokens or 0)
            self.completion_tokens += int(completion_tokens or 0)

    def record_cached(self) -> None:
        """Count one response served from the on-disk cache (no tokens spent)."""
        with self._lock:
            self.cached_calls += 1

    def record_retry(self) -> None:
        """Count one transport retry (rate limit, timeout, connection error, 5xx)."""
        with self._lock:
            self.retries += 1

    def record_reask(self) -> None:
        """Count one re-ask sent after an invalid reply."""
        with self._lock:
            self.reasks += 1

    def record_discard(self, reason: str, n: int = 1) -> None:
        """Count ``n`` discarded LLM outputs under ``reason``.

        Args:
            reason (str):
                A short reason such as ``'invalid_json'``, ``'refusal'`` or
                ``'unknown_category'``.
            n (int):
                How many outputs were discarded. Defaults to 1.
        """
        if n < 0:
            raise ValueError(f"The 'n' parameter must be a non-negative integer. Got {n} instead.")

        if n:
            with self._lock:
                self.discarded[str(reason)] += int(n)

    @property
    def cost(self) -> float | None:
        """float or None: The cost of the tokens spent, ``None`` when no price was given."""
        if self.cost_per_1k_prompt is None and self.cost_per_1k_completion is None:
            return None

        with self._lock:
            prompt, completion = self.prompt_tokens, self.completion_tokens

        return (
            prompt / 1000 * (self.cost_per_1k_prompt or 0.0)
            + completion / 1000 * (self.cost_per_1k_completion or 0.0)
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a plain dict (the ``get_usage()`` of synthesizers).

        Returns:
            dict:
                ``llm_calls``, ``prompt_tokens``, ``completion_tokens``, ``cached_calls``,
                ``retries``, ``reasks``, ``discarded`` (a dict by reason), ``model`` and ``cost``.
        """
        cost = self.cost
        with self._lock:
            return {
                'llm_calls': self.llm_calls,
                'prompt_tokens': self.prompt_tokens,
                'completion_tokens': self.completion_tokens,
                'cached_calls': self.cached_calls,
                'retries': self.retries,
                'reasks': self.reasks,
                'discarded': dict(sorted(self.discarded.items())),
                'model': self.model,
                'cost': cost,
            }

    def to_state(self) -> dict[str, Any]:
        """Return a JSON-serializable state for checkpoints (see :meth:`from_state`).

        Returns:
            dict:
                The counts, the model and the prices.
        """
        state = self.as_dict()
        state.pop('cost')
        state['cost_per_1k_prompt'] = self.cost_per_1k_prompt
        state['cost_per_1k_completion'] = self.cost_per_1k_completion
        state['version'] = _STATE_VERSION
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UsageTracker:
        """Rebuild a tracker from :meth:`to_state`.

        Args:
            state (dict):
                A dict returned by :meth:`to_state`.

        Returns:
            UsageTracker:
                A tracker holding the same counts.
        """
        version = state.get('version', _STATE_VERSION)
        if version != _STATE_VERSION:
            raise ValueError(
                f'Unknown usage state version {version!r}: this version of sdv-llmsynthor reads '
                f'version {_STATE_VERSION}.'
            )

        tracker = cls(
            model=state.get('model', ''),
            cost_per_1k_prompt=state.get('cost_per_1k_prompt'),
            cost_per_1k_completion=state.get('cost_per_1k_completion'),
        )
        for name in (
            'llm_calls', 'prompt_tokens', 'completion_tokens', 'cached_calls', 'retries', 'reasks'
        ):
            setattr(tracker, name, int(state.get(name, 0)))

        tracker.discarded = Counter({str(k): int(v) for k, v in state.get('discarded', {}).items()})
        return tracker

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop('_lock', None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f'UsageTracker({self.as_dict()!r})'
