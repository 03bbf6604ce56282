"""What the LLM planners share: the client, the statistical fallback, and one sized call.

:class:`LLMPlanner` is the base of the anchored and free planners. It resolves the client on
first use, keeps it out of pickles, builds the statistical planner that completes what a
failed call leaves, and sends a call whose ``max_tokens`` is sized from the reply's schema
(:func:`sdv_llmsynthor.llm.structured.estimate_reply_tokens`, capped by the planner's
``max_tokens``). A reply cut off at that limit is salvaged (its complete items kept) by
:func:`sdv_llmsynthor.planners.repair.call_llm`; :func:`valid_items` then keeps the items
that follow the item schema and counts the others.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sdv_llmsynthor.planners.base import Planner, PlannerState
from sdv_llmsynthor.planners.repair import CallResult, call_llm

__all__ = ['LLMPlanner', 'call_max_tokens', 'valid_items']


def call_max_tokens(schema: dict[str, Any], cap: int | None = None) -> int:
    """Completion tokens to allow for one call: what its schema needs, capped by ``cap``.

    Args:
        schema (dict):
            The schema of the reply.
        cap (int or None):
            An upper limit (the planner's ``max_tokens``), or None.

    Returns:
        int
    """
    from sdv_llmsynthor.llm.structured import estimate_reply_tokens

    needed = estimate_reply_tokens(schema)
    return needed if not cap else max(1, min(int(cap), needed))


def valid_items(items: Any, item_schema: dict[str, Any], repairer: Any,
                reason: str = 'truncated_record') -> list[Any]:
    """The items of a salvaged (cut-off) reply that follow their schema; the others are counted.

    Args:
        items (object):
            The array of the reply (anything; a non-list gives no items).
        item_schema (dict):
            The schema of one item.
        repairer (ProposalRepairer):
            Counts each dropped item under ``reason``.
        reason (str):
            The discard reason. Defaults to ``'truncated_record'``.

    Returns:
        list
    """
    from sdv_llmsynthor.llm.structured import schema_errors

    if not isinstance(items, list):
        return []
    kept = [item for item in items if not schema_errors(item, item_schema, max_errors=1)]
    if len(kept) < len(items):
        repairer.discard(reason, len(items) - len(kept))
    return kept


class LLMPlanner(Planner):
    """Base of the planners that ask an LLM (client, fallback, sized and salvaged calls).

    Subclasses set ``client``, ``temperature`` and ``max_tokens`` in their constructor and call
    :meth:`_init_llm_state`.
    """

    uses_llm = True

    def _init_llm_state(self) -> None:
        self._resolved_client = None
        self._fallback = None
        self.repairs: Counter = Counter()
        self.stats: Counter = Counter()

    def get_client(self) -> Any:
        """Return the LLM client, resolving ``client`` on first use.

        Returns:
            LLMClient
        """
        if self._resolved_client is None:
            from sdv_llmsynthor.llm.resolve import resolve_llm

            self._resolved_client = resolve_llm(self.client)
        return self._resolved_client

    def _fallback_planner(self) -> Planner:
        if self._fallback is None:
            from sdv_llmsynthor.planners.statistical import StatisticalPlanner

            self._fallback = StatisticalPlanner()
        return self._fallback

    def _repairers(self, view: Any, state: PlannerState) -> tuple[Any, Any]:
        """The repairer of the table's records and, for households, of the persons'."""
        repairer = view.repairer(state.usage, self.repairs)
        child = (view.repairer(state.usage, self.repairs, child=True) if view.is_households
                 else None)
        return repairer, child

    def _set_counters(self, state: dict[str, Any]) -> None:
        """Restore the ``stats`` and ``repairs`` counters saved by ``get_state``."""
        self.stats = Counter(state.get('stats', {}))
        self.repairs = Counter(state.get('repairs', {}))

    def _ask(self, messages: list[dict[str, Any]], schema: dict[str, Any],
             state: PlannerState, repairer: Any) -> CallResult:
        """Send one call sized from ``schema``; count it, a salvage, or the failure's reason.

        Returns:
            CallResult:
                ``data`` is None when the call failed (the discard is already counted).
        """
        params = {
            'temperature': self.temperature,
            'max_tokens': call_max_tokens(schema, self.max_tokens),
            'seed': int(state.rng.integers(0, 2**31 - 1)),
        }
        self.stats['calls'] += 1
        result = call_llm(self.get_client(), messages, schema, params, state.usage)
        if result.data is None:
            repairer.discard(result.failure or 'invalid_json')
        elif result.truncated:
            self.repairs['salvaged_truncated_reply'] += 1
        elif result.salvaged:
            self.repairs['salvaged_reply'] += 1
        return result

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without a resolved client (it may hold a connection; keys never pickled)."""
        state = self.__dict__.copy()
        state['_resolved_client'] = None
        return state
