"""The discrepancy Q between the target statistics and the current counts.

Per statistic and listed cell, the *deficit* is ``target_share * target_rows - count``:
positive when the cell is under-represented (records must be added), negative when it is
over-represented. Cells within the statistic's tolerance count as met (deficit 0). Every cell
renders as readable text, e.g.
``user_age in [35, 45) & product_category = Food & Beverages: +142 records (+7.1%)``.

Per statistic the total variation distance is
``0.5 * (sum_cells |p - q| + |p_rest - q_rest|)`` where ``p`` are the current shares, ``q`` the
targets and *rest* the rows outside every listed cell: for a complete statistic the rest's
target is (about) zero, so this is the TVD over the whole cell space; for a partial one it
keeps the unlisted mass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdv_llmsynthor.core.aggregate import StatisticCounts
from sdv_llmsynthor.core.encoding import CompiledStatistic

__all__ = ['CellDiscrepancy', 'Discrepancy', 'StatisticDiscrepancy', 'compute_discrepancy']


def _signed(value: float, digits: int = 0) -> str:
    if digits == 0:
        return f'{int(round(value)):+d}'
    return f'{value:+.{digits}f}'


@dataclass
class CellDiscrepancy:
    """The discrepancy of one cell.

    Args:
        statistic (CompiledStatistic):
            Its statistic.
        label (str):
            The statistic's label (its name, prefixed by the table when names collide).
        cell (int):
            Index of the listed cell (``-1`` for the rest).
        text (str):
            The cell as text.
        target_count (float):
            Target records at the target size.
        count (float):
            Current records.
        deficit (float):
            ``target_count - count`` (0 within tolerance).
        weighted_deficit (float):
            ``weight * deficit``.
        target_rows (float):
            Rows the targets are scaled to.
    """

    statistic: CompiledStatistic
    label: str
    cell: int
    text: str
    target_count: float
    count: float
    deficit: float
    weighted_deficit: float
    target_rows: float

    @property
    def deficit_share(self) -> float:
        """float: Deficit as a share of the target rows."""
        return self.deficit / self.target_rows if self.target_rows else 0.0

    def render(self) -> str:
        """Return e.g. ``'gender = Female: +142 records (+7.1%)'``."""
        return (f'{self.text}: {_signed(self.deficit)} records '
                f'({_signed(100 * self.deficit_share, 1)}%)')

    def __str__(self) -> str:
        """Return :meth:`render`."""
        return self.render()


@dataclass
class StatisticDiscrepancy:
    """The discrepancy of one statistic.

    Args:
        statistic (CompiledStatistic):
            The statistic.
        label (str):
            Its name (prefixed by the table when names collide across tables).
        counts (numpy.ndarray):
            Current records per listed cell.
        rest_count (float):
            Current records outside every listed cell.
        current_rows (float):
            Current rows of the statistic's table.
        target_rows (float):
            Rows the targets are scaled to.
        deficits (numpy.ndarray):
            ``target - count`` per listed cell, 0 within tolerance.
        rest_deficit (float):
            The same for the rest.
        tvd (float):
            Total variation distance between current and target shares.
        max_abs_error (float):
            Largest ``|p - q|`` over the listed cells and the rest.
    """

    statistic: CompiledStatistic
    label: str
    counts: np.ndarray
    rest_count: float
    current_rows: float
    target_rows: float
    deficits: np.ndarray
    rest_deficit: float
    tvd: float
    max_abs_error: float

    @property
    def target_counts(self) -> np.ndarray:
        """numpy.ndarray: Target records per listed cell at the target size."""
        return self.statistic.shares * self.target_rows

    @property
    def weighted_deficits(self) -> np.ndarray:
        """numpy.ndarray: ``weight * deficit`` per listed cell."""
        return self.statistic.weight * self.deficits

    @property
    def current_shares(self) -> np.ndarray:
        """numpy.ndarray: Current share of the table's rows per listed cell."""
        if self.current_rows <= 0:
            return np.zeros_like(self.counts)
        return self.counts / self.current_rows

    def cell(self, index: int) -> CellDiscrepancy:
        """Return the :class:`CellDiscrepancy` of one listed cell (``-1``: the rest)."""
        statistic = self.statistic
        if index < 0:
            text = f'rows outside the listed cells of {self.label}'
            return CellDiscrepancy(
                statistic, self.label, -1, text, statistic.rest_share * self.target_rows,
                self.rest_count, self.rest_deficit, statistic.weight * self.rest_deficit,
                self.target_rows,
            )
        return CellDiscrepancy(
            statistic, self.label, int(index), statistic.describe_cell(int(index)),
            float(statistic.shares[index] * self.target_rows), float(self.counts[index]),
            float(self.deficits[index]), float(statistic.weight * self.deficits[index]),
            self.target_rows,
        )

    def is_met(self, slack: float = 0.0) -> bool:
        """Whether every cell is within tolerance (plus ``slack``) of its target share.

        Args:
            slack (float):
                Extra absolute share allowed per cell (rounding).

        Returns:
            bool
        """
        return self.max_abs_error <= self.statistic.tolerance + slack + 1e-12


@dataclass
class Discrepancy:
    """The discrepancy of every statistic at one point of the run.

    Args:
        statistics (list[StatisticDiscrepancy]):
            One per statistic.
    """

    statistics: list[StatisticDiscrepancy] = field(default_factory=list)

    @property
    def tvd(self) -> dict[str, float]:
        """dict[str, float]: TVD per statistic label."""
        return {item.label: item.tvd for item in self.statistics}

    @property
    def mean_tvd(self) -> float:
        """float: Mean TVD over the statistics (0 when there are none)."""
        if not self.statistics:
            return 0.0
        return float(np.mean([item.tvd for item in self.statistics]))

    @property
    def max_tvd(self) -> float:
        """float: Largest TVD (0 when there are no statistics)."""
        return max((item.tvd for item in self.statistics), default=0.0)

    @property
    def max_abs_error(self) -> float:
        """float: Largest absolute cell share error over all statistics."""
        return max((item.max_abs_error for item in self.statistics), default=0.0)

    def get(self, label: str) -> StatisticDiscrepancy:
        """Return the discrepancy of the statistic with this label."""
        for item in self.statistics:
            if item.label == label:
                return item
        raise KeyError(f"No statistic labelled '{label}'.")

    def deficits_of(self, statistic: CompiledStatistic) -> StatisticDiscrepancy:
        """Return the discrepancy of a compiled statistic (matched by identity)."""
        for item in self.statistics:
            if item.statistic is statistic:
                return item
        raise KeyError(f"No discrepancy for statistic '{statistic.name}'.")

    def top_cells(self, k: int = 10, direction: str = 'under') -> list[CellDiscrepancy]:
        """The ``k`` listed cells with the largest weighted deficits.

        Args:
            k (int):
                How many cells.
            direction (str):
                ``'under'`` (under-represented: positive deficits, the default), ``'over'``
                (negative deficits, most over-represented first) or ``'both'`` (largest
                absolute weighted deficit).

        Returns:
            list[CellDiscrepancy]
        """
        if direction not in ('under', 'over', 'both'):
            raise ValueError(
                "The 'direction' parameter must be 'under', 'over' or 'both'. "
                f'Got {direction!r} instead.'
            )
        scores = []
        owners = []
        cells = []
        for position, item in enumerate(self.statistics):
            weighted = item.weighted_deficits
            if direction == 'under':
                score = weighted
            elif direction == 'over':
                score = -weighted
            else:
                score = np.abs(weighted)
            selected = np.flatnonzero(score > 0)
            scores.append(score[selected])
            owners.append(np.full(len(selected), position))
            cells.append(selected)
        if not scores:
            return []
        scores = np.concatenate(scores)
        owners = np.concatenate(owners)
        cells = np.concatenate(cells)
        if len(scores) == 0:
            return []
        k = min(int(k), len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        # Ties resolve by statistic order then cell order, so rendering is deterministic.
        top = top[np.lexsort((cells[top], owners[top], -scores[top]))]
        return [self.statistics[owners[i]].cell(int(cells[i])) for i in top]

    def render_top(self, k: int = 10, direction: str = 'under') -> str:
        """The :meth:`top_cells` as one line each, prefixed by the statistic label."""
        return '\n'.join(
            f'[{cell.label}] {cell.render()}' for cell in self.top_cells(k, direction)
        )

    def summary(self) -> dict[str, Any]:
        """Per-statistic TVD plus the mean and max, as a plain dict."""
        return {
            'tvd': {item.label: round(float(item.tvd), 8) for item in self.statistics},
            'mean_tvd': float(self.mean_tvd),
            'max_tvd': float(self.max_tvd),
            'max_abs_error': float(self.max_abs_error),
        }


def statistic_labels(statistics: list[CompiledStatistic]) -> list[str]:
    """Labels of statistics: their names, prefixed by the table when names collide.

    Args:
        statistics (list[CompiledStatistic]):
            The statistics.

    Returns:
        list[str]
    """
    names = [statistic.name for statistic in statistics]
    return [
        f'{statistic.table}.{statistic.name}' if names.count(statistic.name) > 1
        else statistic.name
        for statistic in statistics
    ]


def compute_discrepancy(
    counts: StatisticCounts,
    target_rows: dict[str, float],
    labels: list[str] | None = None,
) -> Discrepancy:
    """Compare counts with the targets.

    Args:
        counts (StatisticCounts):
            Current counts per statistic.
        target_rows (dict[str, float]):
            Per table, the number of rows the targets are scaled to (the pool target during
            the loop, the requested rows at the end).
        labels (list[str] or None):
            Labels of ``counts.statistics`` (see :func:`statistic_labels`).

    Returns:
        Discrepancy
    """
    if labels is None:
        labels = statistic_labels(counts.statistics)
    items = []
    for statistic, label in zip(counts.statistics, labels):
        current = counts.get(statistic)
        rows = float(counts.rows.get(statistic.table, 0))
        rest = rows - float(current.sum())
        target_total = float(target_rows.get(statistic.table, 0.0))
        targets = statistic.shares * target_total
        deficits = targets - current
        band = statistic.tolerance * target_total
        if band > 0:
            deficits = np.where(np.abs(deficits) <= band, 0.0, deficits)
        rest_deficit = statistic.rest_share * target_total - rest
        if band > 0 and abs(rest_deficit) <= band:
            rest_deficit = 0.0

        if rows > 0:
            shares = current / rows
            rest_share = rest / rows
        else:
            shares = np.zeros_like(current)
            rest_share = 0.0
        errors = np.abs(shares - statistic.shares)
        rest_error = abs(rest_share - statistic.rest_share)
        if rows > 0:
            tvd = 0.5 * (float(errors.sum()) + rest_error)
            max_error = max(float(errors.max(initial=0.0)), rest_error)
        else:
            tvd = 0.5 * (float(statistic.shares.sum()) + statistic.rest_share)
            max_error = max(float(statistic.shares.max(initial=0.0)), statistic.rest_share)

        items.append(StatisticDiscrepancy(
            statistic=statistic, label=label, counts=current, rest_count=rest,
            current_rows=rows, target_rows=target_total, deficits=deficits,
            rest_deficit=float(rest_deficit), tvd=tvd, max_abs_error=max_error,
        ))
    return Discrepancy(items)
