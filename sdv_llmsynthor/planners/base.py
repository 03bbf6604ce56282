"""The planner interface: who proposes records, and what a proposal is.

Every planner implements :meth:`Planner.propose`: given the anchors the engine picked (the
cells with the largest deficits and how many records each needs) and a read-only
:class:`PlannerState`, it returns :class:`Proposal` objects. A proposal fixes every column it
cares about to a category (or discrete value) or to a numeric/datetime :class:`Range`, and
carries either a ``count`` (records to draw) or a relative ``weight`` (the engine then
allocates the anchor's records among the proposals of that anchor, favouring those that also
fill other deficits). Columns a proposal leaves out are completed by the engine from the
target statistics.

For parent/child tables (households and persons) a proposal holds the household's columns in
``assignments`` and one dict of person columns per member in ``children``.

This module imports nothing from ``llm/``: LLM planners live in their own modules, receive
their client in their constructor, and report token usage through ``state.usage``.
"""

from __future__ import annotations

import abc
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    'HouseholdProposal',
    'Planner',
    'PlannerState',
    'Proposal',
    'Range',
    'UsageLedger',
]


@dataclass(frozen=True)
class Range:
    """A numeric or datetime range ``[low, high)`` a proposal assigns to a column.

    Datetime bounds are floats in seconds since the Unix epoch; ISO strings and Timestamps
    are accepted too and converted by the sampler.

    Args:
        low (float):
            Lower bound (included).
        high (float):
            Upper bound (excluded, except at the column's last edge).
    """

    low: Any
    high: Any

    def __str__(self) -> str:
        """Return ``[low, high)``."""
        return f'[{self.low}, {self.high})'

    def to_json(self) -> list:
        """Return ``[low, high]`` for JSON."""
        return [_plain(self.low), _plain(self.high)]


CategoryValue = Any
"""A category, a boolean, a discrete number, or None for a missing value."""


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def value_to_json(value: Any) -> Any:
    """Make one assignment JSON-serialisable (a :class:`Range` becomes ``{'range': [lo, hi]}``)."""
    if isinstance(value, Range):
        return {'range': value.to_json()}
    return _plain(value)


def value_from_json(value: Any) -> Any:
    """Inverse of :func:`value_to_json`."""
    if isinstance(value, dict) and 'range' in value:
        low, high = value['range']
        return Range(low, high)
    return value


@dataclass
class Proposal:
    """A localised joint distribution over the columns, and how many records to draw from it.

    Args:
        assignments (dict[str, object]):
            Column -> category (or discrete value, or None for missing) or :class:`Range`.
            For parent/child tables: the parent (household) columns.
        count (int or None):
            Records (households) to draw. When None, ``weight`` is used and the engine
            allocates the anchor's records.
        weight (float or None):
            Relative weight among the proposals of the same anchor.
        reason (str):
            Free text (the LLM's explanation).
        source (str):
            Who made it: the planner's name (``'statistical'``, ``'anchored'``, ``'free'``).
        anchor_id (int or None):
            The anchor it completes, if any.
        children (list[dict[str, object]] or None):
            Parent/child tables only: one assignment dict per child row (person).
    """

    assignments: dict[str, Any]
    count: int | None = None
    weight: float | None = None
    reason: str = ''
    source: str = ''
    anchor_id: int | None = None
    children: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (for checkpoints and the proposals library)."""
        out = {
            'assignments': {k: value_to_json(v) for k, v in self.assignments.items()},
            'count': self.count,
            'weight': self.weight,
            'reason': self.reason,
            'source': self.source,
            'anchor_id': self.anchor_id,
        }
        if self.children is not None:
            out['children'] = [
                {k: value_to_json(v) for k, v in child.items()} for child in self.children
            ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        """Inverse of :meth:`to_dict`."""
        children = data.get('children')
        return cls(
            assignments={k: value_from_json(v) for k, v in data['assignments'].items()},
            count=data.get('count'),
            weight=data.get('weight'),
            reason=data.get('reason', ''),
            source=data.get('source', ''),
            anchor_id=data.get('anchor_id'),
            children=None if children is None else [
                {k: value_from_json(v) for k, v in child.items()} for child in children
            ],
        )


def HouseholdProposal(  # noqa: N802 - a constructor-like convenience
    household: dict[str, Any],
    persons: list[dict[str, Any]],
    count: int | None = None,
    weight: float | None = None,
    reason: str = '',
    source: str = '',
    anchor_id: int | None = None,
) -> Proposal:
    """Build the :class:`Proposal` of a household with its persons.

    Args:
        household (dict):
            Parent-table columns.
        persons (list[dict]):
            One dict of child-table columns per person.
        count (int or None):
            Households to draw.
        weight (float or None):
            Relative weight.
        reason (str):
            Free text.
        source (str):
            The planner's name.
        anchor_id (int or None):
            The anchor it completes.

    Returns:
        Proposal
    """
    return Proposal(
        assignments=dict(household), count=count, weight=weight, reason=reason,
        source=source, anchor_id=anchor_id, children=[dict(p) for p in persons],
    )


class UsageLedger:
    """LLM usage of one run, fed by the planners (the loop reads it for the token budget).

    LLM planners call :meth:`record_call` for every completion they paid for (and
    :meth:`record_cached` / :meth:`record_discard`); the loop saves the ledger in its checkpoints
    and stops when ``total_tokens`` reaches the token budget.
    """

    def __init__(self) -> None:
        self.llm_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_calls = 0
        self.discarded: Counter[str] = Counter()

    @property
    def total_tokens(self) -> int:
        """int: Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def record_call(self, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """Count one LLM completion and its tokens.

        Args:
            prompt_tokens (int):
                Tokens read.
            completion_tokens (int):
                Tokens written.
        """
        self.llm_calls += 1
        self.prompt_tokens += int(prompt_tokens or 0)
        self.completion_tokens += int(completion_tokens or 0)

    def record_cached(self, n: int = 1) -> None:
        """Count completions served from a cache (no tokens spent)."""
        self.cached_calls += int(n)

    def record_discard(self, reason: str, n: int = 1) -> None:
        """Count ``n`` discarded LLM outputs (or proposals) under ``reason``."""
        if n:
            self.discarded[str(reason)] += int(n)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-serialisable dict."""
        return {
            'llm_calls': self.llm_calls,
            'prompt_tokens': self.prompt_tokens,
            'completion_tokens': self.completion_tokens,
            'cached_calls': self.cached_calls,
            'discarded': dict(sorted(self.discarded.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageLedger:
        """Inverse of :meth:`as_dict`."""
        ledger = cls()
        ledger.llm_calls = int(data.get('llm_calls', 0))
        ledger.prompt_tokens = int(data.get('prompt_tokens', 0))
        ledger.completion_tokens = int(data.get('completion_tokens', 0))
        ledger.cached_calls = int(data.get('cached_calls', 0))
        ledger.discarded = Counter(data.get('discarded', {}))
        return ledger


@dataclass(frozen=True)
class PlannerState:
    """What a planner may read during one iteration (do not mutate).

    Args:
        spec (MacroSpec):
            The spec.
        metadata (object):
            The SDV metadata.
        table (str):
            The table whose records are proposed (the parent table for parent/child).
        child_table (str or None):
            The child table for parent/child synthesis.
        columns (dict[str, dict[str, ResolvedColumn]]):
            Resolved columns per table.
        encodings (dict[str, TableEncoding]):
            Encoders and compiled statistics per table (``core.encoding``).
        statistics (list[CompiledStatistic]):
            Every compiled statistic, parent first then child.
        discrepancy (Discrepancy):
            The current discrepancy (``core.discrepancy``): per-cell deficits in records,
            ``top_cells(k)`` renders the largest as text.
        rules_text (dict[str, list[str]]):
            Per table, the validity rules as ``'name: expression'`` lines.
        context_text (str):
            The spec's free-text context (dataset and tables), to be quoted as data.
        rng (numpy.random.Generator):
            This iteration's generator; planners draw from it and nothing else so runs are
            reproducible.
        iteration (int):
            The iteration number (0-based).
        requested_rows (int):
            Rows (households) the caller asked for.
        pool_rows (int):
            Rows (households) in the pool now.
        pool_target (int):
            Rows (households) the pool aims at.
        batch_rows (int):
            Records the engine wants this iteration.
        usage (UsageLedger):
            Where LLM planners record their calls, tokens, cache hits and discards.
        anchors (list[Anchor]):
            The same anchors :meth:`Planner.propose` receives.
    """

    spec: Any
    metadata: Any
    table: str
    child_table: str | None
    columns: dict[str, dict[str, Any]]
    encodings: dict[str, Any]
    statistics: list[Any]
    discrepancy: Any
    rules_text: dict[str, list[str]]
    context_text: str
    rng: np.random.Generator
    iteration: int
    requested_rows: int
    pool_rows: int
    pool_target: int
    batch_rows: int
    usage: UsageLedger = field(default_factory=UsageLedger)
    anchors: list[Any] = field(default_factory=list)

    @property
    def is_multi_table(self) -> bool:
        """bool: Whether households (parent rows) with their persons are proposed."""
        return self.child_table is not None


class Planner(abc.ABC):
    """Base class of every planner.

    Subclasses set :attr:`name` and :attr:`uses_llm` and implement :meth:`propose`. A planner
    that keeps state across iterations (a cache, a counter) exposes it through
    :meth:`get_state` / :meth:`set_state` so that a resumed run continues bit for bit. Planners
    never hold or expose API keys through these methods.
    """

    name: str = 'planner'
    uses_llm: bool = False

    @abc.abstractmethod
    def propose(self, anchors: list[Any], state: PlannerState) -> list[Proposal]:
        """Propose records that fill the anchors' deficits.

        Args:
            anchors (list[Anchor]):
                The cells to fill, largest weighted deficit first (joints before marginals),
                each with the number of records it needs. May hold one anchor without fixed
                columns ("fill the pool") when no cell is under-represented.
            state (PlannerState):
                Read-only view of the run.

        Returns:
            list[Proposal]
        """

    def get_state(self) -> dict[str, Any]:
        """Return JSON-serialisable state to checkpoint (default: none)."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`get_state` returned (default: nothing to restore)."""

    def __repr__(self) -> str:
        """Return ``ClassName(name='...')``."""
        return f'{type(self).__name__}(name={self.name!r})'
