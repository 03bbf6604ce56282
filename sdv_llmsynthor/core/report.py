"""The run report: rejections, statistics not met and why, LLM usage.

After calibration, every statistic whose final cells are outside tolerance (plus a rounding
slack) is listed with the reason the engine can give:

- a validity rule rejected the records proposed for its cells ("all 120 records proposed for
  cell X were rejected by rule Y");
- another statistic disagrees with it on shared columns (a joint whose margin differs from a
  marginal beyond the tolerances), so the calibration had to trade one against the other;
- the pool never held enough records of the cell (the budget ran out first);
- otherwise, the calibration could not fit every statistic at once with the records it had.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.discrepancy import Discrepancy, StatisticDiscrepancy
from sdv_llmsynthor.core.encoding import CompiledStatistic

__all__ = ['AnchorOutcomes', 'RunReport', 'find_conflicts', 'unmet_statistics']

_CONFLICT_SLACK = 0.005
_CELLS_EXPLAINED = 3
_BUDGET_STOPS = {
    'max_iterations': ' (the iteration budget ran out before it was filled)',
    'token_budget': ' (the token budget ran out before it was filled)',
    'no_progress': ' (the loop stopped after iterations that added nothing)',
}


class AnchorOutcomes:
    """What happened to the records proposed for each anchored cell, across iterations."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, int], dict[str, Any]] = {}

    def _entry(self, label: str, cell: int) -> dict[str, Any]:
        return self._cells.setdefault(
            (label, int(cell)), {'proposed': 0, 'accepted': 0, 'rejected_by': Counter()}
        )

    def add(self, label: str, cell: int, proposed: int, accepted: int,
            rejected_by: dict[str, int]) -> None:
        """Add the outcome of one anchor.

        Args:
            label (str):
                The statistic's label.
            cell (int):
                The cell index.
            proposed (int):
                Records drawn for it.
            accepted (int):
                Records that passed validity.
            rejected_by (dict[str, int]):
                Records failing each rule.
        """
        entry = self._entry(label, cell)
        entry['proposed'] += int(proposed)
        entry['accepted'] += int(accepted)
        entry['rejected_by'].update({k: int(v) for k, v in rejected_by.items() if v})

    def get(self, label: str, cell: int) -> dict[str, Any] | None:
        """The outcome of one cell, or None if it was never anchored."""
        return self._cells.get((label, int(cell)))

    def to_state(self) -> list[list]:
        """Return a JSON-serialisable state."""
        return [
            [label, cell, entry['proposed'], entry['accepted'], dict(entry['rejected_by'])]
            for (label, cell), entry in self._cells.items()
        ]

    @classmethod
    def from_state(cls, state: list[list]) -> AnchorOutcomes:
        """Inverse of :meth:`to_state`."""
        outcomes = cls()
        for label, cell, proposed, accepted, rejected_by in state:
            outcomes.add(label, cell, proposed, accepted, rejected_by)
        return outcomes


def _margin(statistic: CompiledStatistic, positions: list[int]) -> dict[tuple, float]:
    margin: dict[tuple, float] = {}
    for cell in range(statistic.num_cells):
        key = tuple(
            tuple(int(x) for x in statistic.cell_code_ranges(j)[cell]) for j in positions
        )
        margin[key] = margin.get(key, 0.0) + float(statistic.shares[cell])
    return margin


def find_conflicts(statistics: list[CompiledStatistic],
                   labels: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Pairs of complete statistics whose margins on shared columns disagree.

    Margins are compared where both statistics use the same bins on the shared columns.

    Args:
        statistics (list[CompiledStatistic]):
            The statistics.
        labels (list[str]):
            Their labels.

    Returns:
        dict[str, list[tuple[str, str]]]:
            Per statistic label, ``(other label, description)`` of every conflict.
    """
    conflicts: dict[str, list[tuple[str, str]]] = {}
    for a in range(len(statistics)):
        for b in range(a + 1, len(statistics)):
            first, second = statistics[a], statistics[b]
            if first.table != second.table or not (first.complete and second.complete):
                continue
            shared = [c for c in first.columns if c in second.columns]
            if not shared:
                continue
            margin_first = _margin(first, [first.columns.index(c) for c in shared])
            margin_second = _margin(second, [second.columns.index(c) for c in shared])
            if set(margin_first) != set(margin_second):
                continue
            allowed = max(first.tolerance, second.tolerance) + _CONFLICT_SLACK
            worst_key, worst = None, 0.0
            for key, value in margin_first.items():
                difference = abs(value - margin_second[key])
                if difference > worst:
                    worst_key, worst = key, difference
            if worst_key is None or worst <= allowed:
                continue
            parts = []
            for column, code_range in zip(shared, worst_key):
                encoder = first.encoders[first.columns.index(column)]
                parts.append(f'{column} {encoder.render_code_range(code_range)}')
            cell = ' & '.join(parts)
            text_ab = (f"'{labels[a]}' puts {100 * margin_first[worst_key]:.1f}% of rows in "
                       f"{cell}, '{labels[b]}' {100 * margin_second[worst_key]:.1f}%")
            conflicts.setdefault(labels[a], []).append((labels[b], text_ab))
            conflicts.setdefault(labels[b], []).append((labels[a], text_ab))
    return conflicts


def _explain_cell(item: StatisticDiscrepancy, cell: int, outcomes: AnchorOutcomes,
                  pool_counts: np.ndarray | None, stopped_by: str) -> str:
    text = item.statistic.describe_cell(cell)
    target = float(item.statistic.shares[cell] * item.target_rows)
    count = float(item.counts[cell])
    direction = 'short of' if count < target else 'above'
    head = f'cell {text}: {count:.0f} records, {direction} its target {target:.1f}'
    if count >= target:
        return head
    outcome = outcomes.get(item.label, cell)
    if outcome and outcome['proposed'] > 0:
        proposed, accepted = outcome['proposed'], outcome['accepted']
        rejected_by = outcome['rejected_by']
        if rejected_by:
            rule, number = rejected_by.most_common(1)[0]
            if accepted == 0:
                return (f'{head}; all {proposed} records proposed for cell {text} were '
                        f"rejected by rule '{rule}'")
            if accepted < 0.5 * proposed:
                return (f'{head}; {proposed - accepted} of {proposed} records proposed for it '
                        f"were rejected, {number} by rule '{rule}'")
    if pool_counts is not None:
        available = float(pool_counts[cell])
        if available < target:
            why = _BUDGET_STOPS.get(stopped_by, '')
            return f'{head}; the pool held only {available:.0f} such records{why}'
    return head


def unmet_statistics(
    final: Discrepancy,
    outcomes: AnchorOutcomes,
    conflicts: dict[str, list[tuple[str, str]]],
    pool: Discrepancy | None = None,
    slack: float = 0.0,
    stopped_by: str = '',
) -> pd.DataFrame:
    """The statistics outside tolerance after calibration, with the reasons.

    Args:
        final (Discrepancy):
            The discrepancy of the calibrated data at the requested size.
        outcomes (AnchorOutcomes):
            What happened to the anchored records.
        conflicts (dict):
            From :func:`find_conflicts`.
        pool (Discrepancy or None):
            The discrepancy of the whole pool (for "the pool never held enough").
        slack (float):
            Extra absolute share per cell tolerated (rounding).
        stopped_by (str):
            Why the loop stopped (named when the pool ran short of a cell).

    Returns:
        pandas.DataFrame:
            ``statistic``, ``table``, ``tvd``, ``max_abs_error``, ``tolerance``, ``reason``.
    """
    pool_items = {}
    if pool is not None:
        pool_items = {item.label: item for item in pool.statistics}
    rows = []
    for item in final.statistics:
        if item.is_met(slack):
            continue
        reasons = []
        for other, text in conflicts.get(item.label, []):
            reasons.append(f"conflicts with statistic '{other}': {text}")
        errors = np.abs(item.counts - item.statistic.shares * item.target_rows)
        pool_item = pool_items.get(item.label)
        pool_counts = None
        if pool_item is not None and pool_item.current_rows > 0:
            # Pool counts rescaled to the requested size would hide duplicates; compare raw.
            pool_counts = pool_item.counts
        order = np.argsort(-errors, kind='stable')[:_CELLS_EXPLAINED]
        for cell in order:
            if errors[cell] <= 0:
                continue
            reasons.append(_explain_cell(item, int(cell), outcomes, pool_counts, stopped_by))
        rest_target = item.statistic.rest_share * item.target_rows
        if abs(item.rest_count - rest_target) > max(1.0, 0.5 * errors.max(initial=0.0)):
            reasons.append(
                f'{item.rest_count:.0f} records fall outside the listed cells '
                f'(target {rest_target:.1f})'
            )
        if not reasons:
            reasons.append('the calibration could not fit every statistic at once')
        rows.append({
            'statistic': item.label,
            'table': item.statistic.table,
            'tvd': item.tvd,
            'max_abs_error': item.max_abs_error,
            'tolerance': item.statistic.tolerance,
            'reason': '; '.join(reasons),
        })
    return pd.DataFrame(
        rows, columns=['statistic', 'table', 'tvd', 'max_abs_error', 'tolerance', 'reason']
    )


@dataclass
class RunReport:
    """What a run did and what it could not do.

    Args:
        rejections (pandas.DataFrame):
            ``table``, ``rule``, ``checked``, ``rejected``, ``rate``.
        unmet (pandas.DataFrame):
            Statistics outside tolerance after calibration, with reasons.
        statistics (pandas.DataFrame):
            Final ``tvd`` and ``max_abs_error`` of every statistic.
        usage (dict):
            LLM usage (calls, tokens, cache hits, discards by reason).
        stopped_by (str):
            Why the loop stopped.
        warnings (list[str]):
            Anything the caller should know (a pool smaller than requested, ...).
    """

    rejections: pd.DataFrame
    unmet: pd.DataFrame
    statistics: pd.DataFrame
    usage: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = ''
    warnings: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """Render the report as markdown text."""
        lines = [f'Stopped by: {self.stopped_by}', '']
        for warning in self.warnings:
            lines.append(f'- warning: {warning}')
        lines.append('')
        lines.append('| statistic | table | TVD | max abs error |')
        lines.append('|---|---|---|---|')
        for row in self.statistics.itertuples(index=False):
            lines.append(f'| {row.statistic} | {row.table} | {row.tvd:.4f} | '
                         f'{row.max_abs_error:.4f} |')
        lines.append('')
        if len(self.unmet):
            lines.append('Statistics not met:')
            for row in self.unmet.itertuples(index=False):
                lines.append(f'- {row.statistic} (TVD {row.tvd:.4f}): {row.reason}')
            lines.append('')
        if len(self.rejections):
            lines.append('| table | rule | checked | rejected | rate |')
            lines.append('|---|---|---|---|---|')
            for row in self.rejections.itertuples(index=False):
                lines.append(f'| {row.table} | {row.rule} | {row.checked} | {row.rejected} | '
                             f'{row.rate:.3f} |')
        return '\n'.join(lines) + '\n'
