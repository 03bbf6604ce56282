"""The aggregation operator Phi: count rows per cell of every statistic, vectorised.

Rows are first encoded to fine codes (``encoding.py``). For each statistic the fine codes of
its columns go through the statistic's lookup arrays to *levels*; the flat level index is
``sum(level * stride)`` and rows with any uncovered column are dropped. Small level spaces are
counted with one dense ``np.bincount``; large ones map flat indices to the listed cells with
``np.searchsorted`` over the sorted flat indices of the listed cells (sparse).

For parent/child tables, columns of the parent derived from its child rows (``count``,
``sum``, ``any``, ``all``, ``min``, ``max``, ``mean``, with optional predicates) are computed
first with grouped numpy reductions, then parent statistics count parent rows and child
statistics count child rows.

Aggregation is additive over disjoint sets of rows, which the loop uses to keep running
counts of the pool and only aggregate each new batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sdv_llmsynthor.core.encoding import CompiledStatistic, TableEncoding

__all__ = [
    'StatisticCounts',
    'aggregate_codes',
    'aggregate_frame',
    'build_contributions',
    'cell_indices',
    'compute_derived_columns',
]


class StatisticCounts:
    """Counts per listed cell of a set of statistics, plus rows outside every listed cell.

    Args:
        statistics (list[CompiledStatistic]):
            The statistics (of one or several tables).
        rows (dict[str, int] or None):
            Rows counted per table.
    """

    def __init__(self, statistics: list[CompiledStatistic], rows: dict[str, int] | None = None):
        self.statistics = list(statistics)
        self.counts = {_key(s): np.zeros(s.num_cells) for s in self.statistics}
        self.rows: dict[str, int] = dict(rows or {})
        for statistic in self.statistics:
            self.rows.setdefault(statistic.table, 0)

    def copy(self) -> StatisticCounts:
        """Return an independent copy."""
        other = StatisticCounts(self.statistics, self.rows)
        other.counts = {key: value.copy() for key, value in self.counts.items()}
        return other

    def get(self, statistic: CompiledStatistic) -> np.ndarray:
        """Counts per listed cell of ``statistic``."""
        return self.counts[_key(statistic)]

    def rest(self, statistic: CompiledStatistic) -> float:
        """Rows of the statistic's table outside every listed cell."""
        return float(self.rows.get(statistic.table, 0) - self.get(statistic).sum())

    def add(self, other: StatisticCounts) -> None:
        """Add counts of disjoint rows in place."""
        for key, value in other.counts.items():
            self.counts[key] += value
        for table, rows in other.rows.items():
            self.rows[table] = self.rows.get(table, 0) + rows

    def to_state(self) -> dict[str, Any]:
        """Return a JSON-serialisable state."""
        return {
            'rows': dict(self.rows),
            'counts': {'|'.join(key): value.tolist() for key, value in self.counts.items()},
        }


def _key(statistic: CompiledStatistic) -> tuple[str, str]:
    return (statistic.table, statistic.name)


def aggregate_codes(
    statistics: list[CompiledStatistic],
    codes: dict[str, dict[str, np.ndarray]],
    rows: dict[str, int],
) -> StatisticCounts:
    """Count encoded rows per cell of every statistic.

    Args:
        statistics (list[CompiledStatistic]):
            The statistics.
        codes (dict[str, dict[str, numpy.ndarray]]):
            Per table, fine codes per column.
        rows (dict[str, int]):
            Per table, the number of rows.

    Returns:
        StatisticCounts
    """
    result = StatisticCounts(statistics, rows)
    for statistic in statistics:
        table_codes = codes.get(statistic.table)
        if table_codes is None or rows.get(statistic.table, 0) == 0:
            continue
        result.counts[_key(statistic)] = statistic.count(table_codes)
    return result


def aggregate_frame(encoding: TableEncoding, frame: pd.DataFrame) -> StatisticCounts:
    """Encode a frame of one table and count it per cell of the table's statistics.

    Args:
        encoding (TableEncoding):
            The table's encoders and statistics.
        frame (pandas.DataFrame):
            The rows (derived columns already added for a parent table).

    Returns:
        StatisticCounts
    """
    codes = encoding.encode(frame)
    return aggregate_codes(encoding.statistics, {encoding.table: codes},
                           {encoding.table: len(frame)})


def cell_indices(statistic: CompiledStatistic, codes: dict[str, np.ndarray]) -> np.ndarray:
    """Listed cell of every row (``-1`` outside every listed cell).

    Args:
        statistic (CompiledStatistic):
            The statistic.
        codes (dict[str, numpy.ndarray]):
            Fine codes per column of its table.

    Returns:
        numpy.ndarray:
            ``int64``.
    """
    return statistic.cell_index(codes)


# ---------------------------------------------------------------------- derived columns
def _grouped_reduce(values: np.ndarray, groups: np.ndarray, num_groups: int, how: str):
    """min / max of ``values`` per group, NaN for empty groups (values without NaN)."""
    out = np.full(num_groups, np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, groups))
    sorted_groups = groups[order]
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    present = sorted_groups[starts]
    if how == 'min':
        out[present] = sorted_values[starts]
    else:
        ends = np.r_[starts[1:], len(sorted_values)] - 1
        out[present] = sorted_values[ends]
    return out


def compute_derived_columns(
    derived: dict[str, Any],
    child_frame: pd.DataFrame,
    parent_positions: np.ndarray,
    num_parents: int,
    predicates: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Compute parent columns aggregated from child rows.

    Args:
        derived (dict[str, DerivedColumnSpec]):
            The parent's derived columns (name -> definition).
        child_frame (pandas.DataFrame):
            The child rows (natural values).
        parent_positions (numpy.ndarray):
            For every child row, the position (0..num_parents-1) of its parent row.
        num_parents (int):
            Number of parent rows.
        predicates (dict[str, Expression] or None):
            Parsed predicates per derived column (parsed here when missing).

    Returns:
        pandas.DataFrame:
            One column per derived column, ``num_parents`` rows. ``count``/``sum`` give
            integers or floats, ``any``/``all`` booleans, ``min``/``max``/``mean`` floats (NaN
            when no child row qualifies).
    """
    from sdv_llmsynthor.spec.expressions import parse_expression

    predicates = dict(predicates or {})
    positions = np.asarray(parent_positions, dtype=np.int64)
    out = {}
    num_children = len(child_frame)
    for name, definition in derived.items():
        mask = np.ones(num_children, dtype=bool)
        if definition.predicate:
            expression = predicates.get(name)
            if expression is None:
                expression = parse_expression(definition.predicate)
                predicates[name] = expression
            if num_children:
                mask = np.asarray(expression.evaluate(child_frame), dtype=bool)

        function = definition.function
        if function == 'count':
            out[name] = np.bincount(positions[mask], minlength=num_parents).astype(np.int64)
        elif function == 'any':
            out[name] = np.bincount(positions[mask], minlength=num_parents) > 0
        elif function == 'all':
            out[name] = np.bincount(positions[~mask], minlength=num_parents) == 0
        elif function == 'sum' and definition.column is None:
            out[name] = np.bincount(positions[mask], minlength=num_parents).astype(np.int64)
        else:
            values = pd.to_numeric(child_frame[definition.column], errors='coerce').to_numpy(
                dtype=float, na_value=np.nan) if num_children else np.zeros(0)
            keep = mask & ~np.isnan(values)
            if function == 'sum':
                out[name] = np.bincount(positions[keep], weights=values[keep],
                                        minlength=num_parents)
            elif function == 'mean':
                total = np.bincount(positions[keep], weights=values[keep],
                                    minlength=num_parents)
                number = np.bincount(positions[keep], minlength=num_parents)
                with np.errstate(invalid='ignore', divide='ignore'):
                    out[name] = np.where(number > 0, total / np.maximum(number, 1), np.nan)
            elif function in ('min', 'max'):
                out[name] = _grouped_reduce(values[keep], positions[keep], num_parents, function)
            else:
                raise ValueError(f"Unknown derived-column function '{function}'.")

    return pd.DataFrame(out, index=pd.RangeIndex(num_parents))


# ---------------------------------------------------------------------- calibration
def combination_ids(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of equally long integer columns, exactly.

    The columns are folded into one integer key in mixed radix; whenever the next column would
    overflow 63 bits the key so far is renumbered by its distinct values first, so any number
    of columns works without hashing.

    Args:
        columns (list[numpy.ndarray]):
            Integer columns of one length (e.g. the cell of every record in every statistic;
            negative values are allowed).

    Returns:
        tuple[numpy.ndarray, numpy.ndarray]:
            The id of every row (``int64``, ``0 .. k-1`` in order of first appearance) and the
            position of every id's first row.
    """
    if not columns:
        raise ValueError('combination_ids needs at least one column.')
    size = len(columns[0])
    key = np.zeros(size, dtype=np.int64)
    radix = 1
    for column in columns:
        column = np.asarray(column, dtype=np.int64)
        low = int(column.min()) if size else 0
        span = (int(column.max()) - low + 1) if size else 1
        if radix * span >= 2 ** 62:
            key, uniques = pd.factorize(key)
            key = key.astype(np.int64)
            radix = max(len(uniques), 1)
        key = key * span + (column - low)
        radix *= span
    ids, uniques = pd.factorize(key)
    ids = ids.astype(np.int64)
    first = np.empty(len(uniques), dtype=np.int64)
    first[ids[::-1]] = np.arange(size - 1, -1, -1, dtype=np.int64)
    return ids, first


def build_contributions(
    blocks: list[tuple[CompiledStatistic, np.ndarray, np.ndarray]],
    num_units: int,
) -> tuple[sp.csr_matrix, list[tuple[CompiledStatistic, int]]]:
    """Build the sparse ``(units x cells)`` matrix of what every unit adds to every cell.

    Every statistic gets its listed cells plus one *rest* cell (rows in no listed cell), so
    that a complete statistic penalises rows in unlisted cells and a partial one keeps its
    unlisted mass.

    Args:
        blocks (list[tuple[CompiledStatistic, numpy.ndarray, numpy.ndarray]]):
            Per statistic: the statistic, the listed cell of each of its table's rows (``-1``
            outside) and the unit of each row (the row itself for a single table, the
            household for child rows).
        num_units (int):
            Number of units.

    Returns:
        tuple:
            The ``csr_matrix`` and, per statistic, the column offset of its first cell (its
            rest cell is at ``offset + num_cells``).
    """
    offsets = []
    columns_parts = []
    offset = 0
    for statistic, cells, _ in blocks:
        offsets.append((statistic, offset))
        columns_parts.append(np.where(cells >= 0, cells, statistic.num_cells) + offset)
        offset += statistic.num_cells + 1
    one_row_per_unit = all(
        len(units) == num_units
        and (num_units == 0 or (units[0] == 0 and np.all(np.diff(units) == 1)))
        for _, _, units in blocks
    )
    if blocks and one_row_per_unit:
        # A single table: every unit has exactly one cell per statistic, and the statistics'
        # cells are in increasing column order, so the CSR arrays can be laid out directly.
        indices = np.stack(columns_parts, axis=1).astype(np.int32).ravel()
        indptr = np.arange(0, indices.size + 1, len(blocks), dtype=np.int64)
        data = np.ones(indices.size, dtype=np.float64)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(num_units, offset))
        matrix.has_canonical_format = True
        return matrix, offsets

    if blocks:
        rows = np.concatenate([np.asarray(units, dtype=np.int64) for _, _, units in blocks])
        cols = np.concatenate(columns_parts).astype(np.int64)
    else:
        rows = np.zeros(0, dtype=np.int64)
        cols = np.zeros(0, dtype=np.int64)
    data = np.ones(len(rows), dtype=np.float64)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(num_units, offset))
    matrix.sum_duplicates()
    return matrix, offsets
