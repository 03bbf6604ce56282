"""Anchor selection: which under-represented cells to fill this iteration, and how many records.

Cells are taken greedily by weighted deficit. A cell of a statistic over a subset of another
cell's columns (a marginal under a joint) is *covered* by the joint cell when the joint cell
fixes each of those columns inside the marginal cell: the joint cell's records fill the
marginal cell too, so the marginal cell only keeps the part of its deficit the joint cell does
not fill, and is dropped when nothing is left. The chosen anchors are returned joints first.

The records of all anchors are scaled down together so that the batch fits the budget the loop
gives (the room left toward the pool target, or a refinement budget once the pool is full).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdv_llmsynthor.core.discrepancy import Discrepancy
from sdv_llmsynthor.core.encoding import CodeRange, CompiledStatistic

__all__ = ['Anchor', 'fill_anchor', 'select_anchors']

_CANDIDATES_PER_ANCHOR = 4


@dataclass
class Anchor:
    """A cell to fill and how many records it needs.

    Args:
        anchor_id (int):
            Unique within the run.
        table (str):
            The table whose rows the cell counts.
        statistic (str or None):
            Label of the statistic (None for a fill anchor).
        cell (int):
            Index of the listed cell (``-1`` for a fill anchor).
        cell_key (tuple or None):
            The cell's key as written in the spec.
        fixed (dict[str, object]):
            Column -> category (or discrete value) or ``Range``: what the cell fixes.
        deficit (float):
            The cell's deficit in records at the pool target.
        records (int):
            Records (rows of ``table``) to generate for it this iteration.
        text (str):
            The cell as text.
        fixed_codes (dict[str, tuple[int, int]]):
            The same as ``fixed`` in fine-code ranges (for the engine and the statistical
            planner).
        compiled (CompiledStatistic or None):
            The statistic object.
        units (float):
            What the anchor costs in the loop's budget (households for parent/child).
    """

    anchor_id: int
    table: str
    statistic: str | None
    cell: int
    cell_key: tuple | None
    fixed: dict[str, Any]
    deficit: float
    records: int
    text: str = ''
    fixed_codes: dict[str, CodeRange] = field(default_factory=dict)
    compiled: CompiledStatistic | None = field(default=None, repr=False)
    units: float = 0.0

    @property
    def is_fill(self) -> bool:
        """bool: Whether the anchor fixes nothing (fill the pool with any realistic records)."""
        return not self.fixed

    def render(self) -> str:
        """Return e.g. ``'gender = Female: 142 records needed'``."""
        what = self.text or 'any record'
        return f'{what}: {self.records} records needed'

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary (for checkpoints and reports)."""
        from sdv_llmsynthor.planners.base import value_to_json

        return {
            'anchor_id': self.anchor_id,
            'table': self.table,
            'statistic': self.statistic,
            'cell': self.cell,
            'text': self.text,
            'fixed': {key: value_to_json(value) for key, value in self.fixed.items()},
            'deficit': float(self.deficit),
            'records': int(self.records),
        }


def _covers(outer: dict[str, CodeRange], inner: dict[str, CodeRange]) -> bool:
    """Whether every row of the ``outer`` cell also lies in the ``inner`` cell."""
    if len(inner) >= len(outer):
        return False
    for column, (start, stop) in inner.items():
        if column not in outer:
            return False
        outer_start, outer_stop = outer[column]
        if outer_start < start or outer_stop > stop:
            return False
    return True


def fill_anchor(anchor_id: int, table: str, records: int, units: float | None = None) -> Anchor:
    """An anchor that fixes nothing: ``records`` realistic records of any kind.

    Args:
        anchor_id (int):
            Its id.
        table (str):
            The table.
        records (int):
            Records needed.
        units (float or None):
            Budget units (defaults to ``records``).

    Returns:
        Anchor
    """
    return Anchor(
        anchor_id=anchor_id, table=table, statistic=None, cell=-1, cell_key=None, fixed={},
        deficit=float(records), records=int(records), text='any realistic record',
        units=float(records if units is None else units),
    )


def _scale_records(needs: np.ndarray, budget: float) -> np.ndarray:
    """Integer records per anchor, proportional to ``needs``, summing to at most ``budget``."""
    needs = np.maximum(needs, 0.0)
    total = float(needs.sum())
    if total <= budget:
        return np.ceil(needs - 1e-9).astype(np.int64)
    scaled = needs * (budget / total)
    base = np.floor(scaled).astype(np.int64)
    remainder = int(math.floor(budget)) - int(base.sum())
    if remainder > 0:
        order = np.argsort(-(scaled - base), kind='stable')
        base[order[:remainder]] += 1
    return base


def select_anchors(
    discrepancy: Discrepancy,
    max_anchors: int,
    batch_rows: float,
    start_id: int = 0,
    rows_per_unit: dict[str, float] | None = None,
    min_deficit: float = 0.5,
) -> list[Anchor]:
    """Pick the cells to fill this iteration and how many records each needs.

    Args:
        discrepancy (Discrepancy):
            The current discrepancy (deficits at the pool target).
        max_anchors (int):
            At most this many anchors.
        batch_rows (float):
            Budget of the batch, in units (rows of a single table; households for
            parent/child). The anchors' records are scaled down together to fit it.
        start_id (int):
            Id of the first anchor.
        rows_per_unit (dict[str, float] or None):
            Per table, rows per budget unit (1 for a single table and the parent table; the
            mean household size for the child table).
        min_deficit (float):
            Cells with a smaller deficit (in records) are not anchors.

    Returns:
        list[Anchor]:
            Joint anchors first (more columns first), then by weighted deficit.
    """
    rows_per_unit = rows_per_unit or {}
    if max_anchors <= 0 or batch_rows < 1:
        return []

    candidates = []
    for item in discrepancy.statistics:
        weighted = item.weighted_deficits
        selected = np.flatnonzero(item.deficits >= min_deficit)
        for cell in selected:
            candidates.append((float(weighted[cell]), item, int(cell)))
    if not candidates:
        return []

    limit = max_anchors * _CANDIDATES_PER_ANCHOR
    candidates.sort(key=lambda entry: -entry[0])
    candidates = candidates[:limit]

    chosen: list[dict[str, Any]] = []
    for weighted, item, cell in candidates:
        if len(chosen) >= max_anchors:
            break
        statistic = item.statistic
        codes = statistic.cell_fixed_codes(cell)
        need = float(item.deficits[cell])
        for other in chosen:
            if other['table'] == statistic.table and _covers(other['codes'], codes):
                need -= other['need']
        if need < min_deficit:
            continue
        for other in chosen:
            if other['table'] == statistic.table and _covers(codes, other['codes']):
                other['need'] -= need
        chosen.append({
            'item': item, 'cell': cell, 'codes': codes, 'need': need, 'weighted': weighted,
            'table': statistic.table,
        })

    chosen = [entry for entry in chosen if entry['need'] >= min_deficit]
    if not chosen:
        return []

    unit_costs = np.array([
        entry['need'] / float(rows_per_unit.get(entry['table'], 1.0)) for entry in chosen
    ])
    units = _scale_records(unit_costs, float(batch_rows))
    anchors = []
    order = sorted(
        range(len(chosen)),
        key=lambda i: (-len(chosen[i]['codes']), -chosen[i]['weighted'], i),
    )
    next_id = start_id
    for i in order:
        if units[i] <= 0:
            continue
        entry = chosen[i]
        item = entry['item']
        statistic = item.statistic
        scale = float(rows_per_unit.get(entry['table'], 1.0))
        records = int(max(1, round(units[i] * scale)))
        if records > entry['need']:
            records = int(math.ceil(entry['need'] - 1e-9))
        anchors.append(Anchor(
            anchor_id=next_id,
            table=statistic.table,
            statistic=item.label,
            cell=entry['cell'],
            cell_key=statistic.cell_keys[entry['cell']] if statistic.cell_keys else None,
            fixed=statistic.cell_fixed_values(entry['cell']),
            deficit=float(item.deficits[entry['cell']]),
            records=records,
            text=statistic.describe_cell(entry['cell']),
            fixed_codes=entry['codes'],
            compiled=statistic,
            units=float(units[i]),
        ))
        next_id += 1
    return anchors
