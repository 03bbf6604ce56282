"""The free LLM planner: the paper's LLM Proposal Sampling, as written (appendix E.1).

The LLM reads the top joint and marginal discrepancies ("Joint Guidance", "Marginal
Guidance") and returns up to ``m`` proposals, each with a reason, a value (category) or a
``[min, max]`` range for every column, and a record count ``num``. The planner only checks and
repairs what comes back (``planners.repair``); the counts are the LLM's. Kept for fidelity to
the paper and as an ablation of the anchored planner.

A reply that cannot be used never stops the loop: the discard is counted by reason and the
statistical planner completes the iteration's anchors instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sdv_llmsynthor.llm.prompts import (
    free_messages,
    free_schema,
    household_properties,
    meta_key,
    record_schema,
)
from sdv_llmsynthor.planners.base import HouseholdProposal, PlannerState, Proposal
from sdv_llmsynthor.planners.llm_planner import LLMPlanner, valid_items
from sdv_llmsynthor.planners.repair import (
    HouseholdKeys,
    RejectedProposal,
    TableView,
    build_table_view,
    repair_household,
)

__all__ = ['FreeLLMPlanner', 'guidance_lines']

_MAX_REASON_CHARS = 500


def guidance_lines(discrepancy: Any, joint: bool, k: int = 10,
                   tables: tuple[str, ...] | None = None) -> list[str]:
    """The ``k`` largest discrepancies (both directions) of joint or marginal statistics.

    Args:
        discrepancy (Discrepancy):
            The current discrepancy.
        joint (bool):
            Joint statistics (True) or marginals (False).
        k (int):
            At most this many lines.
        tables (tuple of str or None):
            When several tables are synthesised, prefix each line with its table.

    Returns:
        list[str]:
            e.g. ``'user_age in [35, 45) & gender = Female: +142 records (+7.1%)'``.
    """
    if discrepancy is None:
        return []
    total = sum(item.statistic.num_cells for item in discrepancy.statistics)
    lines = []
    for cell in discrepancy.top_cells(max(total, 1), direction='both'):
        if cell.statistic.is_joint != joint:
            continue
        text = cell.render()
        if tables and len(tables) > 1:
            text = f'{cell.statistic.table}: {text}'
        lines.append(text)
        if len(lines) >= k:
            break
    return lines


class FreeLLMPlanner(LLMPlanner):
    """The paper's proposal prompt: the LLM plans values, ranges and counts itself.

    Args:
        client (LLMClient, str or None):
            The LLM client, or anything ``sdv_llmsynthor.llm.resolve_llm`` accepts; resolved
            on first use.
        num_proposals (int):
            At most this many proposals per call (``n_proposals``). Defaults to 5.
        temperature (float):
            Sampling temperature. Defaults to 0.8.
        max_tokens (int or None):
            Upper limit of the completion tokens of one call. Each call asks for what its
            reply needs (proposals x columns, estimated from the reply's schema, plus a
            margin), capped by this. Defaults to no cap.
        guidance_cells (int):
            Discrepancy lines per guidance (joint and marginal). Defaults to 10.
        dependency_groups (list of list of str or None):
            Groups of dependent columns, shown to the LLM as guidance.
    """

    name = 'free'

    def __init__(self, client: Any = None, num_proposals: int = 5, temperature: float = 0.8,
                 max_tokens: int | None = None, guidance_cells: int = 10,
                 dependency_groups: list[list[str]] | None = None):
        self.client = client
        self.num_proposals = num_proposals
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.guidance_cells = guidance_cells
        self.dependency_groups = dependency_groups
        self._init_llm_state()

    def _values_schema(self, view: TableView, keys: HouseholdKeys) -> dict[str, Any]:
        if not view.is_households:
            return record_schema(list(view.columns.values()), None, 'range')
        person = record_schema(list(view.child_columns.values()), None, 'range')
        members = household_properties(keys.size, view.sizes, keys.persons, person)
        return record_schema(list(view.columns.values()), None, 'range', members)

    @staticmethod
    def _example(view: TableView, keys: HouseholdKeys) -> dict[str, Any]:
        def shape(columns):
            out = {}
            for column in columns.values():
                out[column.name] = '[min, max]' if column.is_binned else 'category'
            return out

        example = shape(view.columns)
        if view.is_households:
            example[keys.size] = 'n'
            example[keys.persons] = [shape(view.child_columns), '...']
        return example

    def propose(self, anchors: list[Any], state: PlannerState) -> list[Proposal]:
        """Ask the LLM for up to ``num_proposals`` proposals with counts.

        Args:
            anchors (list[Anchor]):
                This iteration's anchors (used only when the call fails: the statistical
                planner completes them).
            state (PlannerState):
                The run's state (the discrepancy gives the guidance).

        Returns:
            list[Proposal]
        """
        value = self.num_proposals
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                "The 'num_proposals' parameter must be a positive integer. "
                f'Got {value!r} instead.'
            )
        view = build_table_view(state)
        repairer, child_repairer = self._repairers(view, state)
        names = list(view.columns) + list(view.child_columns)
        reason_key = meta_key('reason', [])
        keys = HouseholdKeys.for_columns(names)

        num_samples = int(state.batch_rows or sum(int(a.records) for a in anchors) or 1)
        tables = (view.table,) + ((view.child_table,) if view.child_table else ())
        joint = guidance_lines(state.discrepancy, True, self.guidance_cells, tables)
        marginal = guidance_lines(state.discrepancy, False, self.guidance_cells, tables)
        messages = free_messages(
            list(view.columns.values()), joint, marginal, int(self.num_proposals), num_samples,
            view.table, context=view.context, rules=view.rules,
            dependency_groups=self.dependency_groups, child_table=view.child_table,
            child_columns=list(view.child_columns.values()),
            example_values=self._example(view, keys),
        )
        schema = free_schema(self._values_schema(view, keys), int(self.num_proposals),
                             reason_key=reason_key)
        result = self._ask(messages, schema, state, repairer)
        proposals: list[Proposal] = []
        if result.data is not None:
            raw_proposals = result.data.get('proposals')
            if result.truncated:
                raw_proposals = valid_items(raw_proposals,
                                            schema['properties']['proposals']['items'], repairer)
            if not isinstance(raw_proposals, list):
                repairer.discard('invalid_record')
                raw_proposals = []
            if len(raw_proposals) > int(self.num_proposals):
                repairer.discard('too_many_proposals', len(raw_proposals) - self.num_proposals)
                raw_proposals = raw_proposals[:int(self.num_proposals)]
            for raw in raw_proposals:
                proposal = self._read_proposal(raw, view, repairer, child_repairer, keys,
                                               reason_key, num_samples)
                if proposal is not None:
                    proposals.append(proposal)

        if proposals:
            _fill_batch(proposals, num_samples, repairer)
            self.stats['proposals'] += len(proposals)
            return proposals
        self.stats['fallback_iterations'] += 1
        return self._fallback_planner().propose(list(anchors), state)

    def _read_proposal(self, raw: Any, view: TableView, repairer: Any, child_repairer: Any,
                       keys: HouseholdKeys, reason_key: str, num_samples: int):
        try:
            if not isinstance(raw, dict):
                raise RejectedProposal('invalid_record')
            values = raw.get('values')
            if not isinstance(values, dict):
                # Columns written next to "reason" and "num" instead of inside "values".
                values = {k: v for k, v in raw.items() if k not in (reason_key, 'num')}
                repairer.repaired('flat_proposal')
            count = repairer.repair_count(raw.get('num'), num_samples)
            reason = str(raw.get(reason_key) or '')[:_MAX_REASON_CHARS]
            if view.is_households:
                household, persons = repair_household(view, values, repairer, child_repairer,
                                                      keys)
                return HouseholdProposal(household, persons, count=count, reason=reason,
                                         source=self.name)
            assignments = repairer.repair_record(values, list(view.columns))
        except RejectedProposal as rejected:
            repairer.discard(rejected.reason)
            return None
        return Proposal(assignments=assignments, count=count, reason=reason, source=self.name)

    def get_state(self) -> dict[str, Any]:
        """Return the planner's counters (JSON-serialisable, no client)."""
        return {'stats': dict(self.stats), 'repairs': dict(self.repairs)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        state = state or {}
        self._set_counters(state)

    def summary(self) -> dict[str, Any]:
        """Counters of the run: calls, proposals kept, fallbacks, repairs.

        Returns:
            dict
        """
        return {
            'calls': int(self.stats['calls']),
            'proposals': int(self.stats['proposals']),
            'fallback_iterations': int(self.stats['fallback_iterations']),
            'repairs': dict(sorted(self.repairs.items())),
        }


def _fill_batch(proposals: list[Proposal], num_samples: int, repairer: Any) -> None:
    """Scale the counts of proposals that total fewer records than the batch asked for.

    The prompt asks for proposals totalling ``num_samples`` records; a small model often
    writes counts that sum to a fraction of it (22 of 360), which would leave the pool short
    for the rest of the run. The counts keep their proportions and are raised, by largest
    remainder, to total ``num_samples``; each proposal keeps at least one record. Counts that
    already reach the batch are left alone (``repair_count`` caps single ones).
    """
    counts = np.array([int(p.count or 0) for p in proposals], dtype=float)
    total = float(counts.sum())
    if total <= 0 or total >= num_samples:
        return
    exact = counts / total * num_samples
    scaled = np.floor(exact).astype(np.int64)
    remainder = int(num_samples - scaled.sum())
    if remainder > 0:
        scaled[np.argsort(-(exact - scaled), kind='stable')[:remainder]] += 1
    for proposal, count in zip(proposals, np.maximum(scaled, 1)):
        proposal.count = int(count)
    repairer.repaired('scaled_counts')
