"""Encoding of records into integer codes, and compilation of the spec's statistics.

Every column the spec models gets a :class:`ColumnEncoder` that maps its values to *fine codes*
(``int32``): the index of the category, of the discrete value, or of the fine bin (main bins
split into sub-bins) the value falls in. ``-1`` marks a missing value, a value out of range or
an unseen category; such values are counted, never raised on.

Every statistic of the spec (including the implicit child-count statistic of a parent table)
is compiled into a :class:`CompiledStatistic`: per column a lookup array from fine code to
*level* (a category, or an interval that is a union of consecutive fine bins), the flat index
of every listed cell in the product of the levels, the target shares, the weight and the
tolerance. Aggregation (``aggregate.py``) then only needs array lookups and ``bincount``.

Internally every fixed value of a column is a half-open range of fine codes ``[start, stop)``:
a category is ``[c, c + 1)``, an interval of fine bins ``[a, b)``. This is what the
statistical planner and the anchors manipulate; :meth:`ColumnEncoder.code_range_to_value`
turns it back into a category or a :class:`~sdv_llmsynthor.planners.base.Range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.spec.model import MacroSpec, StatisticSpec

__all__ = [
    'ENCODED_KINDS',
    'CodeRange',
    'ColumnEncoder',
    'CompiledStatistic',
    'TableEncoding',
    'compile_table',
    'format_number',
]

ENCODED_KINDS = ('categorical', 'boolean', 'numerical', 'datetime')
"""Column kinds that get fine codes."""

_SMALL_INPUT = 256

DENSE_SPACE_LIMIT = 2_000_000
"""Statistics whose level space is smaller than this are counted with a dense ``bincount``."""

CodeRange = tuple[int, int]
"""A half-open range ``[start, stop)`` of fine codes."""


def _first_not_none(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def format_number(value: float) -> str:
    """Format a bin edge or value compactly (``35``, ``23.5``, ``0.125``, ``1.2e+06``).

    Args:
        value (float):
            The number.

    Returns:
        str
    """
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f'{value:.6g}'


def _seconds_to_text(seconds: float) -> str:
    timestamp = pd.Timestamp(0) + pd.Timedelta(seconds=float(seconds))
    timestamp = timestamp.round('s')
    if timestamp == timestamp.normalize():
        return timestamp.strftime('%Y-%m-%d')
    return timestamp.strftime('%Y-%m-%d %H:%M:%S')


def _edge_to_float(edge: Any, kind: str) -> float:
    """Convert a spec edge (number, ISO date string, Timestamp) to a float."""
    if isinstance(edge, bool):
        raise ValueError(f'{edge!r} is not a bin edge.')
    if isinstance(edge, (int, float, np.integer, np.floating)):
        return float(edge)
    timestamp = pd.Timestamp(edge)
    if pd.isna(timestamp):
        raise ValueError(f'{edge!r} is not a date.')
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert('UTC').tz_localize(None)
    return float((timestamp - pd.Timestamp(0)) / pd.Timedelta(seconds=1))


@dataclass
class ColumnEncoder:
    """Map one column's values to fine codes, and fine codes back to values.

    Build one with :meth:`from_resolved` from a ``ResolvedColumn`` of
    ``sdv_llmsynthor.spec.resolve``.

    Args:
        name (str):
            Column name.
        kind (str):
            ``categorical``, ``boolean``, ``numerical``, ``datetime``, ``id`` or ``other``.
        categories (list or None):
            Categories (categorical and boolean columns); fine code = index.
        edges (numpy.ndarray or None):
            Fine bin edges as floats (datetimes as seconds since the epoch). Bins are
            right-open except the last, which also holds its upper edge.
        values (numpy.ndarray or None):
            A discrete numeric support; fine code = index.
        integer (bool):
            Whether the column holds integers.
        minimum (float or None):
            Lowest allowed value.
        maximum (float or None):
            Highest allowed value.
        datetime_format (str or None):
            The SDV metadata's datetime format.
        missing_proportion (float):
            Share of rows where the column is missing.
        description (str or None):
            Free text.
        derived (object or None):
            The ``DerivedColumnSpec`` of a parent column computed from child rows.
        decimals (int or None):
            Decimals to round floats to, when known.
    """

    name: str
    kind: str
    categories: list | None = None
    edges: np.ndarray | None = None
    values: np.ndarray | None = None
    integer: bool = False
    minimum: float | None = None
    maximum: float | None = None
    datetime_format: str | None = None
    missing_proportion: float = 0.0
    description: str | None = None
    derived: Any = None
    decimals: int | None = None
    _category_index: pd.Index | None = field(default=None, init=False, repr=False)
    _string_lookup: dict | None = field(default=None, init=False, repr=False)
    _exact_lookup: dict | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        """Prepare the lookup structures."""
        if self.categories is not None:
            self.categories = list(self.categories)
            self._category_index = pd.Index(self.categories, dtype=object)
        if self.edges is not None:
            self.edges = np.asarray(self.edges, dtype=float)
        if self.values is not None:
            self.values = np.asarray(self.values, dtype=float)
        if self.minimum is None:
            if self.edges is not None:
                self.minimum = float(self.edges[0])
            elif self.values is not None and len(self.values):
                self.minimum = float(np.min(self.values))
        if self.maximum is None:
            if self.edges is not None:
                self.maximum = float(self.edges[-1])
            elif self.values is not None and len(self.values):
                self.maximum = float(np.max(self.values))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_resolved(cls, resolved: Any) -> ColumnEncoder:
        """Build an encoder from a ``ResolvedColumn`` (or any object with the same attributes).

        Args:
            resolved (ResolvedColumn):
                From ``sdv_llmsynthor.spec.resolve.resolve_columns``.

        Returns:
            ColumnEncoder
        """
        kind = getattr(resolved, 'kind', 'other')
        categories = getattr(resolved, 'categories', None)
        edges = getattr(resolved, 'edges', None)
        values = getattr(resolved, 'values', None)
        if kind in ('categorical', 'boolean'):
            edges = None
            values = None
            if categories is None and kind == 'boolean':
                categories = [False, True]
        elif kind in ('numerical', 'datetime'):
            categories = None
            if edges is not None:
                values = None
        else:
            categories = edges = values = None

        return cls(
            name=resolved.name,
            kind=kind,
            categories=categories,
            edges=edges,
            values=values,
            integer=bool(getattr(resolved, 'integer', False)),
            minimum=getattr(resolved, 'min', None),
            maximum=getattr(resolved, 'max', None),
            datetime_format=getattr(resolved, 'datetime_format', None),
            missing_proportion=float(getattr(resolved, 'missing_proportion', 0.0) or 0.0),
            description=getattr(resolved, 'description', None),
            derived=getattr(resolved, 'derived', None),
            decimals=_first_not_none(getattr(resolved, 'decimal_places', None),
                                     getattr(resolved, 'decimals', None)),
        )

    # ------------------------------------------------------------------ properties
    @property
    def is_binned(self) -> bool:
        """bool: Whether fine codes are bins of :attr:`edges`."""
        return self.edges is not None

    @property
    def is_categorical(self) -> bool:
        """bool: Whether fine codes index :attr:`categories`."""
        return self.categories is not None

    @property
    def is_discrete(self) -> bool:
        """bool: Whether fine codes index the discrete :attr:`values`."""
        return self.values is not None and self.edges is None

    @property
    def is_encoded(self) -> bool:
        """bool: Whether the column has fine codes at all."""
        return self.num_codes > 0

    @property
    def num_codes(self) -> int:
        """int: Number of fine codes."""
        if self.categories is not None:
            return len(self.categories)
        if self.edges is not None:
            return max(len(self.edges) - 1, 0)
        if self.values is not None:
            return len(self.values)
        return 0

    # ------------------------------------------------------------------ values -> codes
    def to_float(self, values: Any) -> np.ndarray:
        """Convert values to floats (datetimes to seconds since the epoch, missing to NaN).

        Args:
            values (array-like):
                The column.

        Returns:
            numpy.ndarray
        """
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        if self.kind == 'datetime':
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                return series.to_numpy(dtype=float, na_value=np.nan)
            if not pd.api.types.is_datetime64_any_dtype(series):
                series = pd.to_datetime(series, format=self.datetime_format, errors='coerce')
            if getattr(series.dt, 'tz', None) is not None:
                series = series.dt.tz_convert('UTC').dt.tz_localize(None)
            seconds = (series - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
            return seconds.to_numpy(dtype=float, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(series):
            return series.to_numpy(dtype=float, na_value=np.nan)
        return pd.to_numeric(series, errors='coerce').to_numpy(dtype=float, na_value=np.nan)

    def encode(self, values: Any) -> np.ndarray:
        """Map values to fine codes.

        Args:
            values (array-like):
                The column (a Series, list or array).

        Returns:
            numpy.ndarray:
                ``int32`` fine codes, ``-1`` for missing, out-of-range or unseen values.
        """
        if self.categories is not None:
            return self._encode_categories(values)
        if self.edges is not None:
            return self.encode_floats(self.to_float(values))
        if self.values is not None:
            return self.encode_floats(self.to_float(values))
        return np.full(len(values), -1, dtype=np.int32)

    def _encode_categories(self, values: Any) -> np.ndarray:
        if not isinstance(values, pd.Series) and len(values) <= _SMALL_INPUT:
            # A few values (a proposal's representative record): a dict beats pandas.
            return np.array([self._category_code(value) for value in values], dtype=np.int32)
        series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
        if isinstance(series.dtype, pd.CategoricalDtype):
            categories = series.cat.categories
            mapping = self._category_index.get_indexer(pd.Index(categories, dtype=object))
            mapping = np.append(mapping, -1).astype(np.int32)
            return mapping[series.cat.codes.to_numpy()]

        if self.kind == 'boolean' and pd.api.types.is_bool_dtype(series):
            array = series.to_numpy(dtype=bool)
            true_code = self._category_code(True)
            false_code = self._category_code(False)
            return np.where(array, true_code, false_code).astype(np.int32)

        # Hash every distinct value once, then map the few distinct values to categories.
        distinct_codes, uniques = pd.factorize(series, use_na_sentinel=True)
        mapping = self._category_index.get_indexer(pd.Index(uniques, dtype=object))
        unmatched = np.flatnonzero(mapping < 0)
        if unmatched.size:
            # Categories written as numbers in the spec may arrive as strings (CSV) and vice
            # versa: match by text before counting a value as unseen.
            lookup = self._string_lookup_table()
            for index in unmatched:
                mapping[index] = lookup.get(_category_text(uniques[index]), -1)
        return np.append(mapping, -1).astype(np.int32)[distinct_codes]

    def _string_lookup_table(self) -> dict:
        if self._string_lookup is None:
            lookup = {}
            for index, category in enumerate(self.categories):
                lookup.setdefault(_category_text(category), index)
            self._string_lookup = lookup
        return self._string_lookup

    def encode_floats(self, numbers: np.ndarray) -> np.ndarray:
        """Map floats (datetimes as seconds) of a binned or discrete column to fine codes.

        Args:
            numbers (numpy.ndarray):
                Values; NaN is missing.

        Returns:
            numpy.ndarray:
                ``int32`` codes, ``-1`` for missing or out-of-range values.
        """
        numbers = np.asarray(numbers, dtype=float)
        if self.edges is not None:
            edges = self.edges
            # Searching the edges without the last one closes the last bin; values above the
            # last edge and NaN (sorted last) are marked below, values below the first get -1.
            codes = np.searchsorted(edges[:-1], numbers, side='right') - 1
            codes[~(numbers <= edges[-1])] = -1
            return codes.astype(np.int32)

        if self.values is not None:
            order = np.argsort(self.values, kind='stable')
            ordered = self.values[order]
            position = np.clip(np.searchsorted(ordered, numbers), 0, len(ordered) - 1)
            below = np.clip(position - 1, 0, len(ordered) - 1)
            scale = max(float(np.max(np.abs(ordered))), 1.0) * 1e-9
            take_below = np.abs(ordered[below] - numbers) < np.abs(ordered[position] - numbers)
            nearest = np.where(take_below, below, position)
            hit = np.abs(ordered[nearest] - numbers) <= scale
            codes = np.where(hit, order[nearest], -1)
            return codes.astype(np.int32)

        return np.full(numbers.shape, -1, dtype=np.int32)

    # ------------------------------------------------------------------ keys -> codes
    def category_code(self, value: Any) -> int:
        """Fine code of a category or discrete value, ``-1`` if unknown.

        Args:
            value (object):
                A category (categorical/boolean) or a number (discrete values, or a point of a
                binned column).

        Returns:
            int
        """
        if self.categories is not None:
            return self._category_code(value)
        if self.edges is not None or self.values is not None:
            try:
                number = _edge_to_float(value, self.kind)
            except (TypeError, ValueError):
                return -1
            return int(self.encode_floats(np.array([number]))[0])
        return -1

    def _category_code(self, value: Any) -> int:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return -1
        if self._exact_lookup is None:
            lookup = {}
            for index, category in enumerate(self.categories):
                lookup.setdefault((type(category) is bool, category), index)
            self._exact_lookup = lookup
        try:
            index = self._exact_lookup.get((isinstance(value, (bool, np.bool_)), value))
        except TypeError:
            index = None
        if index is not None:
            return int(index)
        return int(self._string_lookup_table().get(_category_text(value), -1))

    def edge_position(self, edge: Any) -> int | None:
        """Position of a spec edge among the fine edges (with float tolerance), or None.

        Args:
            edge (number or str):
                An edge as written in the spec.

        Returns:
            int or None
        """
        if self.edges is None:
            return None
        try:
            number = _edge_to_float(edge, self.kind)
        except (TypeError, ValueError):
            return None
        edges = self.edges
        span = max(abs(float(edges[-1])), abs(float(edges[0])), float(edges[-1] - edges[0]), 1.0)
        position = int(np.searchsorted(edges, number))
        for index in (position - 1, position):
            if 0 <= index < len(edges) and abs(edges[index] - number) <= span * 1e-9:
                return index
        return None

    def key_part_to_code_range(self, part: Any) -> CodeRange:
        """Fine-code range ``[start, stop)`` of one coordinate of a cell key.

        An interval whose ends are not exactly edges is snapped to the nearest edges (the
        spec validator reports such keys; the engine does not crash on them).

        Args:
            part (object):
                A category, a discrete value, or a ``(low, high)`` interval.

        Returns:
            tuple[int, int]:
                ``(-1, -1)`` when the part matches nothing.
        """
        if isinstance(part, (tuple, list)) and len(part) == 2 and self.edges is not None:
            start = self.edge_position(part[0])
            stop = self.edge_position(part[1])
            if start is None or stop is None:
                try:
                    low = _edge_to_float(part[0], self.kind)
                    high = _edge_to_float(part[1], self.kind)
                except (TypeError, ValueError):
                    return (-1, -1)
                start = int(np.argmin(np.abs(self.edges - low)))
                stop = int(np.argmin(np.abs(self.edges - high)))
            if stop <= start:
                return (-1, -1)
            return (int(start), int(stop))

        code = self.category_code(part)
        if code < 0:
            return (-1, -1)
        return (code, code + 1)

    # ------------------------------------------------------------------ codes -> values
    def code_range_to_value(self, code_range: CodeRange) -> Any:
        """Turn a fine-code range back into a value a proposal can hold.

        Args:
            code_range (tuple[int, int]):
                ``[start, stop)``.

        Returns:
            object:
                The category or discrete value for a single code of a categorical/discrete
                column; a ``Range`` (from ``planners.base``) of edges for a binned column.
        """
        start, stop = code_range
        if self.edges is not None:
            from sdv_llmsynthor.planners.base import Range

            return Range(float(self.edges[start]), float(self.edges[stop]))
        if self.categories is not None:
            return self.categories[start]
        if self.values is not None:
            value = float(self.values[start])
            return int(value) if value == int(value) else value
        return None

    def code_range_bounds(self, code_range: CodeRange) -> tuple[float, float]:
        """Numeric bounds ``(low, high)`` of a fine-code range of a binned column."""
        start, stop = code_range
        return float(self.edges[start]), float(self.edges[stop])

    def render_value(self, value: Any) -> str:
        """Render a number (datetimes: seconds) of this column as text."""
        if self.kind == 'datetime':
            return _seconds_to_text(value)
        return format_number(value)

    def render_code_range(self, code_range: CodeRange) -> str:
        """Render a fine-code range as ``'= value'`` or ``'in [low, high)'``.

        Args:
            code_range (tuple[int, int]):
                ``[start, stop)``.

        Returns:
            str
        """
        start, stop = code_range
        if self.edges is not None:
            closing = ']' if stop == len(self.edges) - 1 else ')'
            low = self.render_value(self.edges[start])
            high = self.render_value(self.edges[stop])
            return f'in [{low}, {high}{closing}'
        if stop - start == 1:
            value = self.code_range_to_value(code_range)
            if isinstance(value, float):
                value = format_number(value)
            return f'= {value}'
        values = [self.code_range_to_value((code, code + 1)) for code in range(start, stop)]
        return f'in {values}'


def _category_text(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    return str(value)


@dataclass
class CompiledStatistic:
    """A statistic of the spec compiled for vectorised aggregation.

    Args:
        name (str):
            Statistic name (unique within its table).
        table (str):
            The table whose rows it counts.
        columns (tuple[str, ...]):
            Its columns.
        encoders (list[ColumnEncoder]):
            One per column.
        level_ranges (list[list[tuple[int, int]]]):
            Per column, the fine-code range of every level.
        lookups (list[numpy.ndarray]):
            Per column, ``int32`` array of length ``num_codes + 1`` mapping a fine code to its
            level (``-1`` when the statistic does not cover it; the last entry, used by fine code
            ``-1``, is ``-1``).
        strides (numpy.ndarray):
            ``int64`` stride of each column in the flat level space.
        space_size (int):
            Product of the numbers of levels.
        cell_levels (numpy.ndarray):
            ``(num_cells, num_columns)`` level of each listed cell.
        cell_flat (numpy.ndarray):
            ``int64`` flat index of each listed cell.
        shares (numpy.ndarray):
            Target share of all rows of the table for each listed cell.
        weight (float):
            The statistic's weight.
        tolerance (float):
            Absolute share per cell within which a cell counts as met.
        complete (bool):
            Whether unlisted cells are zero.
        implicit (bool):
            Whether the loader made it (a relationship's child count).
        cell_keys (list[tuple]):
            The keys as written in the spec.
        description (str or None):
            Free text.
    """

    name: str
    table: str
    columns: tuple[str, ...]
    encoders: list[ColumnEncoder]
    level_ranges: list[list[CodeRange]]
    lookups: list[np.ndarray]
    strides: np.ndarray
    space_size: int
    cell_levels: np.ndarray
    cell_flat: np.ndarray
    shares: np.ndarray
    weight: float = 1.0
    tolerance: float = 0.0
    complete: bool = True
    implicit: bool = False
    cell_keys: list[tuple] = field(default_factory=list)
    description: str | None = None
    _dense_map: np.ndarray | None = field(default=None, init=False, repr=False)
    _sorted_flat: np.ndarray | None = field(default=None, init=False, repr=False)
    _sorted_cells: np.ndarray | None = field(default=None, init=False, repr=False)
    _cell_ranges: list[np.ndarray] | None = field(default=None, init=False, repr=False)
    _flat_lookups: list[np.ndarray] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        """Build the flat-index -> cell maps (dense when the space is small, else sorted)."""
        if self.space_size < DENSE_SPACE_LIMIT:
            dense = np.full(self.space_size + 1, -1, dtype=np.int32)
            dense[self.cell_flat] = np.arange(len(self.cell_flat), dtype=np.int32)
            self._dense_map = dense
        else:
            order = np.argsort(self.cell_flat, kind='stable')
            self._sorted_flat = self.cell_flat[order]
            self._sorted_cells = order.astype(np.int64)

    # ------------------------------------------------------------------ basic facts
    @property
    def num_cells(self) -> int:
        """int: Number of listed cells."""
        return len(self.cell_flat)

    @property
    def is_joint(self) -> bool:
        """bool: Whether the statistic spans two or more columns."""
        return len(self.columns) > 1

    @property
    def is_dense(self) -> bool:
        """bool: Whether counting uses a dense ``bincount`` over the level space."""
        return self._dense_map is not None

    @property
    def rest_share(self) -> float:
        """float: Target share of rows outside every listed cell."""
        return max(0.0, 1.0 - float(self.shares.sum()))

    def cell_code_ranges(self, position: int) -> np.ndarray:
        """``(num_cells, 2)`` fine-code range of every listed cell on one column.

        Args:
            position (int):
                Index of the column in :attr:`columns`.

        Returns:
            numpy.ndarray
        """
        if self._cell_ranges is None:
            ranges = []
            for j in range(len(self.columns)):
                levels = np.asarray(self.level_ranges[j], dtype=np.int64).reshape(-1, 2)
                ranges.append(levels[self.cell_levels[:, j]])
            self._cell_ranges = ranges
        return self._cell_ranges[position]

    def cell_fixed_codes(self, cell: int) -> dict[str, CodeRange]:
        """Fine-code range per column of one listed cell."""
        return {
            column: tuple(int(x) for x in self.cell_code_ranges(j)[cell])
            for j, column in enumerate(self.columns)
        }

    def cell_fixed_values(self, cell: int) -> dict[str, Any]:
        """Category or ``Range`` per column of one listed cell (what a proposal would hold)."""
        return {
            column: self.encoders[j].code_range_to_value(tuple(self.cell_code_ranges(j)[cell]))
            for j, column in enumerate(self.columns)
        }

    def describe_cell(self, cell: int) -> str:
        """Readable text of a listed cell.

        Args:
            cell (int):
                Index of the cell.

        Returns:
            str:
                e.g. ``'user_age in [35, 45) & product_category = Food & Beverages'``.
        """
        parts = []
        for j, column in enumerate(self.columns):
            code_range = tuple(int(x) for x in self.cell_code_ranges(j)[cell])
            parts.append(f'{column} {self.encoders[j].render_code_range(code_range)}')
        return ' & '.join(parts)

    # ------------------------------------------------------------------ rows -> cells
    def flat_levels(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """Flat level index of every row, ``space_size`` for rows outside the levels.

        Args:
            codes (dict[str, numpy.ndarray]):
                Fine codes per column (``int32``, ``-1`` for missing).

        Returns:
            numpy.ndarray:
                ``int64``.
        """
        if self._flat_lookups is None:
            # Per column: fine code -> level * stride, or the space size when not covered, so
            # that the sum is the flat index, or at least the space size for uncovered rows.
            self._flat_lookups = [
                np.where(lookup >= 0, lookup.astype(np.int64) * stride, self.space_size)
                for lookup, stride in zip(self.lookups, self.strides)
            ]
        flat = None
        for j, column in enumerate(self.columns):
            part = self._flat_lookups[j][codes[column]]
            if flat is None:
                flat = part
            else:
                flat += part
        if len(self.columns) > 1:
            np.minimum(flat, self.space_size, out=flat)
        return flat

    def cell_index(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """Listed cell of every row, ``-1`` for rows in no listed cell.

        Args:
            codes (dict[str, numpy.ndarray]):
                Fine codes per column.

        Returns:
            numpy.ndarray:
                ``int64``.
        """
        flat = self.flat_levels(codes)
        if self._dense_map is not None:
            return self._dense_map[flat].astype(np.int64)
        position = np.searchsorted(self._sorted_flat, flat)
        position = np.minimum(position, len(self._sorted_flat) - 1)
        hit = self._sorted_flat[position] == flat
        return np.where(hit, self._sorted_cells[position], -1)

    def count(self, codes: dict[str, np.ndarray], num_rows: int | None = None) -> np.ndarray:
        """Count rows per listed cell.

        Args:
            codes (dict[str, numpy.ndarray]):
                Fine codes per column.
            num_rows (int or None):
                Number of rows (inferred from the codes when None).

        Returns:
            numpy.ndarray:
                ``float64`` count per listed cell.
        """
        flat = self.flat_levels(codes)
        if self._dense_map is not None:
            dense = np.bincount(flat, minlength=self.space_size + 1)
            return dense[self.cell_flat].astype(float)
        cells = self.cell_index(codes)
        counts = np.bincount(cells + 1, minlength=self.num_cells + 1)
        return counts[1:].astype(float)


@dataclass
class TableEncoding:
    """The encoders and compiled statistics of one table.

    Args:
        table (str):
            Table name.
        encoders (dict[str, ColumnEncoder]):
            Every column the metadata or the spec knows (ids and PII included, unencoded).
        statistics (list[CompiledStatistic]):
            The table's statistics, in spec order.
        num_rows (int or None):
            The spec's ``num_rows``.
    """

    table: str
    encoders: dict[str, ColumnEncoder]
    statistics: list[CompiledStatistic]
    num_rows: int | None = None

    @property
    def encoded_columns(self) -> list[str]:
        """list[str]: Columns with fine codes."""
        return [name for name, encoder in self.encoders.items() if encoder.is_encoded]

    @property
    def statistic_columns(self) -> list[str]:
        """list[str]: Columns used by at least one statistic, in first-use order."""
        seen: dict[str, None] = {}
        for statistic in self.statistics:
            for column in statistic.columns:
                seen.setdefault(column)
        return list(seen)

    def encode(self, frame: pd.DataFrame, columns: list[str] | None = None,
               known: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Fine codes of every encoded column present in ``frame``.

        Args:
            frame (pandas.DataFrame):
                The rows.
            columns (list[str] or None):
                Restrict to these columns. Defaults to every column used by a statistic.
            known (dict[str, numpy.ndarray] or None):
                Codes already known for some columns (e.g. drawn by the sampler), used as
                they are.

        Returns:
            dict[str, numpy.ndarray]:
                ``int32`` codes per column; a column absent from the frame is all ``-1``.
        """
        if columns is None:
            columns = self.statistic_columns
        codes = {}
        for column in columns:
            encoder = self.encoders.get(column)
            if known is not None and column in known and column in frame.columns:
                codes[column] = known[column]
            elif encoder is None or column not in frame.columns:
                codes[column] = np.full(len(frame), -1, dtype=np.int32)
            else:
                codes[column] = encoder.encode(frame[column])
        return codes

    def get_statistic(self, name: str) -> CompiledStatistic:
        """Return the compiled statistic called ``name``."""
        for statistic in self.statistics:
            if statistic.name == name:
                return statistic
        raise KeyError(f"Table '{self.table}' has no statistic named '{name}'.")


def compile_statistic(
    statistic: StatisticSpec,
    table: str,
    encoders: dict[str, ColumnEncoder],
    num_rows: int | None = None,
) -> CompiledStatistic:
    """Compile one statistic of the spec.

    Cells whose key matches nothing (unknown category, interval off the edges) are dropped;
    duplicated keys are merged (shares summed). The spec validator reports both.

    Args:
        statistic (StatisticSpec):
            The statistic.
        table (str):
            Its table.
        encoders (dict[str, ColumnEncoder]):
            The table's encoders.
        num_rows (int or None):
            The table's ``num_rows`` (for partial count tables).

    Returns:
        CompiledStatistic
    """
    columns = tuple(statistic.columns)
    column_encoders = [encoders[column] for column in columns]
    proportions = statistic.proportions(num_rows)

    level_ranges: list[list[CodeRange]] = [[] for _ in columns]
    level_index: list[dict[CodeRange, int]] = [{} for _ in columns]
    cell_levels = []
    cell_shares = []
    cell_keys = []
    seen_cells: dict[tuple, int] = {}
    for cell in statistic.cells:
        key = cell.key
        levels = []
        for j, encoder in enumerate(column_encoders):
            code_range = encoder.key_part_to_code_range(key[j]) if j < len(key) else (-1, -1)
            if code_range[0] < 0:
                levels = None
                break
            index = level_index[j].get(code_range)
            if index is None:
                index = len(level_ranges[j])
                level_index[j][code_range] = index
                level_ranges[j].append(code_range)
            levels.append(index)
        if levels is None:
            continue
        share = float(proportions.get(key, 0.0))
        levels_key = tuple(levels)
        if levels_key in seen_cells:
            cell_shares[seen_cells[levels_key]] += share
            continue
        seen_cells[levels_key] = len(cell_levels)
        cell_levels.append(levels)
        cell_shares.append(share)
        cell_keys.append(tuple(key))

    lookups = []
    sizes = []
    for j, encoder in enumerate(column_encoders):
        lookup = np.full(encoder.num_codes + 1, -1, dtype=np.int32)
        for level, (start, stop) in enumerate(level_ranges[j]):
            lookup[start:stop] = level
        lookup[-1] = -1
        lookups.append(lookup)
        sizes.append(max(len(level_ranges[j]), 1))

    strides = np.ones(len(columns), dtype=np.int64)
    for j in range(len(columns) - 2, -1, -1):
        strides[j] = strides[j + 1] * sizes[j + 1]
    space_size = int(np.prod(np.asarray(sizes, dtype=object))) if sizes else 1

    cell_levels_array = np.asarray(cell_levels, dtype=np.int64).reshape(-1, len(columns))
    cell_flat = (cell_levels_array * strides[None, :]).sum(axis=1).astype(np.int64)
    return CompiledStatistic(
        name=statistic.name,
        table=table,
        columns=columns,
        encoders=column_encoders,
        level_ranges=level_ranges,
        lookups=lookups,
        strides=strides,
        space_size=space_size,
        cell_levels=cell_levels_array,
        cell_flat=cell_flat,
        shares=np.asarray(cell_shares, dtype=float),
        weight=float(statistic.weight),
        tolerance=float(statistic.tolerance),
        complete=bool(statistic.complete),
        implicit=bool(statistic.implicit),
        cell_keys=cell_keys,
        description=statistic.description,
    )


_DECIMAL_KEYS = ('decimal_places', 'num_decimal_digits', 'decimals')


def _add_decimals(encoders: dict[str, ColumnEncoder], metadata: Any, table_name: str) -> None:
    """Read a float column's rounding from its metadata when it says so (DayZ-style keys)."""
    from sdv_llmsynthor.spec.resolve import metadata_to_dict

    try:
        columns = metadata_to_dict(metadata)['tables'].get(table_name, {}).get('columns', {})
    except (TypeError, AttributeError):
        return
    for name, encoder in encoders.items():
        column = columns.get(name) or {}
        for key in _DECIMAL_KEYS:
            value = column.get(key)
            if encoder.decimals is None and isinstance(value, int) and value >= 0:
                encoder.decimals = value
                if value == 0 and encoder.kind == 'numerical':
                    encoder.integer = True


def _integer_edges(encoder: ColumnEncoder) -> bool:
    support = encoder.edges if encoder.edges is not None else encoder.values
    if support is None or len(support) == 0:
        return False
    support = np.asarray(support, dtype=float)
    return bool(np.all(np.isfinite(support)) and np.all(support == np.round(support)))


def _integers_from_rules(encoders: dict[str, ColumnEncoder], rules: list[Any]) -> None:
    """Mark as integer a numeric column a rule equates with an integer column or literal.

    A rule like ``size == persons__count`` says ``size`` holds whole numbers even when the
    metadata gives no representation (SDV then assumes floats): drawn as a float inside its
    bin, it would never equal the count and every record would be rejected. Only columns whose
    bin edges (or values) are all whole numbers and whose rounding the metadata leaves open
    are marked.
    """
    from sdv_llmsynthor.spec.expressions import Column, Compare, Literal, parse_expression

    def is_integer(node) -> bool:
        if isinstance(node, Literal):
            return (isinstance(node.value, (int, np.integer))
                    and not isinstance(node.value, bool))
        if isinstance(node, Column) and node.name in encoders:
            encoder = encoders[node.name]
            return encoder.kind == 'numerical' and (
                encoder.integer or (encoder.derived is not None and encoder.derived.function
                                    in ('count', 'sum') and encoder.derived.column is None))
        return False

    for rule in rules or []:
        try:
            tree = parse_expression(rule.expression)
        except Exception:  # noqa: BLE001 - a broken rule is reported by the validity checker
            continue
        for node in tree.root.walk():
            if not isinstance(node, Compare) or node.op not in ('==', '!='):
                continue
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if not isinstance(side, Column) or side.name not in encoders:
                    continue
                encoder = encoders[side.name]
                if (encoder.kind == 'numerical' and not encoder.integer
                        and encoder.derived is None and encoder.decimals is None
                        and _integer_edges(encoder) and is_integer(other)):
                    encoder.integer = True


def compile_table(
    spec: MacroSpec,
    metadata: Any,
    table_name: str,
    resolved: dict[str, Any] | None = None,
) -> TableEncoding:
    """Resolve the columns of one table and compile its statistics.

    Args:
        spec (MacroSpec):
            The spec.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.
        table_name (str):
            The table.
        resolved (dict or None):
            Already resolved columns (``resolve_columns``); resolved here when None.

    Returns:
        TableEncoding
    """
    if resolved is None:
        from sdv_llmsynthor.spec.resolve import resolve_columns

        resolved = resolve_columns(spec, metadata, table_name)

    encoders = {name: ColumnEncoder.from_resolved(column) for name, column in resolved.items()}
    _add_decimals(encoders, metadata, table_name)
    table_spec = spec.tables.get(table_name)
    if table_spec is not None:
        _integers_from_rules(encoders, table_spec.rules)
    statistics = []
    num_rows = None
    if table_spec is not None:
        num_rows = table_spec.num_rows
        for statistic in table_spec.statistics:
            if all(column in encoders and encoders[column].is_encoded
                   for column in statistic.columns):
                statistics.append(compile_statistic(statistic, table_name, encoders, num_rows))

    return TableEncoding(
        table=table_name, encoders=encoders, statistics=statistics, num_rows=num_rows
    )
