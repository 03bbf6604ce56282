"""Resolve what a spec and the SDV metadata say about each column, in one place.

The engine, the validator and the derivation all need the same facts about a column: its kind
(categorical, boolean, numerical, datetime, id), its allowed categories, its fine bin edges as
floats, its discrete support, whether it holds integers. This module computes them once from a
:class:`~sdv_llmsynthor.spec.model.MacroSpec` and the SDV metadata.

Datetimes are handled as float seconds since the Unix epoch (naive times are read as UTC), so
numeric and datetime columns share one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.spec.model import DerivedColumnSpec, MacroSpec, child_count_column

COLUMN_KINDS = ('categorical', 'boolean', 'numerical', 'datetime', 'id', 'other')

_SDTYPE_KINDS = {
    'categorical': 'categorical',
    'ordinal': 'categorical',
    'boolean': 'boolean',
    'numerical': 'numerical',
    'datetime': 'datetime',
    'id': 'id',
}


@dataclass
class ResolvedColumn:
    """Everything the engine needs to know about one column of one table.

    Args:
        name (str):
            Column name.
        kind (str):
            ``'categorical'``, ``'boolean'``, ``'numerical'``, ``'datetime'``, ``'id'`` or
            ``'other'`` (an SDV PII sdtype such as ``email``: not modelled by the spec).
        categories (list or None):
            Allowed categories (categorical, ordinal and boolean columns): the spec's
            ``categories``, else the metadata's ``range_values``, else the keys seen in the
            table's statistics in order of first appearance. Booleans without any of them get
            ``[False, True]``.
        ordered (bool):
            Whether the categories are ordered (SDV ``ordinal`` sdtype, in ``range_values``
            order).
        edges (numpy.ndarray or None):
            Fine bin edges (main bins split into ``sub_bins`` uniform sub-bins) as floats;
            datetimes as seconds since the epoch. None when the column has no bins.
        main_edges (numpy.ndarray or None):
            The main bin edges as floats.
        sub_bins (int):
            Sub-bins per main bin.
        values (list or None):
            Discrete numeric support: the spec's ``values``, else, for a numeric column without
            bins, the scalar keys seen in statistics (sorted). None otherwise.
        integer (bool):
            Whether the column holds integers (metadata ``decimal_places`` 0, or a legacy
            ``computer_representation`` ``Int*``; derived counts).
        min (float or None):
            Lowest allowed value: the first edge, the smallest of ``values``, else the
            metadata's ``range_min`` (datetimes as seconds since the epoch).
        max (float or None):
            Highest allowed value: the last edge, the largest of ``values``, else the
            metadata's ``range_max``.
        decimal_places (int or None):
            The metadata's ``decimal_places`` (numerical columns).
        nullable (bool):
            The metadata's ``range_is_nullable`` (True when absent).
        datetime_format (str or None):
            The metadata's ``datetime_format``.
        missing_proportion (float):
            Share of rows where the column is missing.
        description (str or None):
            Free text from the spec.
        derived (DerivedColumnSpec or None):
            For a parent-table column computed from child rows (including the implicit
            ``<child>__count``), its definition.
        sdtype (str or None):
            The SDV sdtype (None for derived columns).
    """

    name: str
    kind: str
    categories: list | None = None
    ordered: bool = False
    edges: np.ndarray | None = None
    main_edges: np.ndarray | None = None
    sub_bins: int = 1
    values: list | None = None
    integer: bool = False
    min: float | None = None
    max: float | None = None
    datetime_format: str | None = None
    decimal_places: int | None = None
    nullable: bool = True
    missing_proportion: float = 0.0
    description: str | None = None
    derived: DerivedColumnSpec | None = None
    sdtype: str | None = None

    @property
    def is_binned(self) -> bool:
        """bool: Whether statistics key this column by intervals of :attr:`edges`."""
        return self.edges is not None

    @property
    def is_discrete(self) -> bool:
        """bool: Whether statistics key this column by single values (categories or values)."""
        return self.edges is None and (self.categories is not None or self.values is not None)

    def edge_index(self, value: Any) -> int | None:
        """Position of ``value`` among the fine edges, or None when it is not an edge.

        Args:
            value (number or str):
                An edge as written in the spec (a number, or an ISO date for datetimes).

        Returns:
            int or None
        """
        if self.edges is None:
            return None
        try:
            number = edge_to_float(value, self.kind)
        except (TypeError, ValueError):
            return None
        return find_edge(self.edges, number)

    def interval_indices(self, key_part: Any) -> tuple[int, int] | None:
        """Fine-bin index range ``[start, stop)`` covered by an interval key.

        Args:
            key_part (tuple or list):
                ``(low, high)`` as written in the spec.

        Returns:
            tuple[int, int] or None:
                None when the key is not an interval on the edges.
        """
        if not isinstance(key_part, (tuple, list)) or len(key_part) != 2:
            return None
        low = self.edge_index(key_part[0])
        high = self.edge_index(key_part[1])
        if low is None or high is None or high <= low:
            return None
        return low, high

    def to_float(self, values: Any) -> np.ndarray:
        """Convert a column of values to floats (datetimes to seconds since the epoch).

        Args:
            values (array-like):
                The column (a Series, list or array). Missing values become NaN.

        Returns:
            numpy.ndarray
        """
        if self.kind == 'datetime':
            return datetimes_to_seconds(values, self.datetime_format)
        return pd.to_numeric(pd.Series(values), errors='coerce').to_numpy(dtype=float)


def metadata_to_dict(metadata: Any) -> dict[str, Any]:
    """Return SDV metadata as its dict form (``tables`` and ``relationships``).

    Args:
        metadata (sdv.metadata.Metadata, SingleTableMetadata or dict):
            The metadata. A single-table dict (with ``columns`` at the top) is wrapped as a
            table called ``'table'``.

    Returns:
        dict
    """
    if isinstance(metadata, dict):
        data = metadata
    elif hasattr(metadata, 'to_dict'):
        data = metadata.to_dict()
    else:
        raise TypeError(
            f'Expected SDV metadata (sdv.metadata.Metadata) or its dict, got {type(metadata)}.'
        )
    if 'tables' not in data and 'columns' in data:
        data = {'tables': {'table': data}, 'relationships': []}
    return {'tables': data.get('tables', {}), 'relationships': data.get('relationships', [])}


def metadata_relationships(metadata: Any) -> list[dict[str, str]]:
    """The metadata's relationships as dicts with ``parent_table_name``, ``child_table_name``,
    ``parent_primary_key`` and ``child_foreign_key``.

    Args:
        metadata (sdv.metadata.Metadata or dict):
            The metadata.

    Returns:
        list[dict[str, str]]
    """
    return list(metadata_to_dict(metadata)['relationships'])


def find_metadata_relationship(
    metadata: Any, parent_table: str, child_table: str
) -> dict[str, str] | None:
    """The metadata relationship from ``parent_table`` to ``child_table``, if any."""
    for rel in metadata_relationships(metadata):
        if (rel.get('parent_table_name') == parent_table
                and rel.get('child_table_name') == child_table):
            return rel
    return None


def column_kind(column_metadata: dict[str, Any]) -> str:
    """Kind of a column from its SDV column metadata.

    Args:
        column_metadata (dict):
            e.g. ``{'sdtype': 'numerical', 'computer_representation': 'Int64'}``.

    Returns:
        str:
            One of :data:`COLUMN_KINDS`.
    """
    return _SDTYPE_KINDS.get(column_metadata.get('sdtype'), 'other')


def is_integer_representation(column_metadata: dict[str, Any]) -> bool:
    """Whether the SDV column metadata says the column holds integers.

    SDV 2 says it with ``decimal_places: 0``; SDV 1 metadata with a ``computer_representation``
    such as ``Int64``.
    """
    if column_metadata.get('decimal_places') == 0:
        return True
    representation = str(column_metadata.get('computer_representation') or '')
    return representation.startswith(('Int', 'UInt', 'int', 'uint'))


def metadata_range(column_metadata: dict[str, Any], kind: str) -> tuple[float | None, float | None]:
    """The metadata's ``range_min``/``range_max`` as floats (datetimes in epoch seconds)."""
    bounds = []
    for key in ('range_min', 'range_max'):
        value = column_metadata.get(key)
        if value is None:
            bounds.append(None)
            continue
        try:
            if kind == 'datetime' and isinstance(value, str):
                seconds = datetimes_to_seconds([value], column_metadata.get('datetime_format'))
                bounds.append(float(seconds[0]) if not np.isnan(seconds[0]) else None)
            else:
                bounds.append(float(value))
        except (TypeError, ValueError):
            bounds.append(None)
    return bounds[0], bounds[1]


def edge_to_float(edge: Any, kind: str = 'numerical') -> float:
    """Convert one bin edge to a float.

    Args:
        edge (number or str):
            A number, or an ISO-8601 date/datetime string (datetime columns).
        kind (str):
            The column kind; numbers on a datetime column are taken as seconds since the epoch.

    Returns:
        float

    Raises:
        ValueError: if the edge is a string that is not a date, or a boolean.
        TypeError: if it is neither a number nor a string.
    """
    if isinstance(edge, bool):
        raise ValueError(f'{edge!r} is not a bin edge.')
    if isinstance(edge, (int, float, np.integer, np.floating)):
        return float(edge)
    if isinstance(edge, str):
        if kind != 'datetime':
            raise ValueError(f'{edge!r} is not a number.')
        timestamp = pd.Timestamp(edge)
        if pd.isna(timestamp):
            raise ValueError(f'{edge!r} is not a date.')
        if timestamp.tzinfo is not None:
            timestamp = timestamp.tz_convert('UTC').tz_localize(None)
        return float((timestamp - pd.Timestamp(0)) / pd.Timedelta(seconds=1))
    if isinstance(edge, (pd.Timestamp, np.datetime64)):
        return edge_to_float(pd.Timestamp(edge).isoformat(), 'datetime')
    raise TypeError(f'{edge!r} is not a bin edge.')


def seconds_to_iso(seconds: float) -> str:
    """Format seconds since the epoch as an ISO date (or datetime when it has a time part)."""
    timestamp = pd.Timestamp(0) + pd.Timedelta(seconds=float(seconds))
    timestamp = timestamp.round('s')
    if timestamp == timestamp.normalize():
        return timestamp.strftime('%Y-%m-%d')
    return timestamp.isoformat()


def datetimes_to_seconds(values: Any, datetime_format: str | None = None) -> np.ndarray:
    """Convert datetimes (or strings) to float seconds since the epoch, NaN where missing.

    Args:
        values (array-like):
            Datetimes, or strings in ``datetime_format`` (parsed leniently when None).
        datetime_format (str or None):
            The SDV metadata's ``datetime_format``.

    Returns:
        numpy.ndarray
    """
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series):
        if pd.api.types.is_numeric_dtype(series):
            return series.to_numpy(dtype=float)
        series = pd.to_datetime(series, format=datetime_format, errors='coerce')
    if getattr(series.dt, 'tz', None) is not None:
        series = series.dt.tz_convert('UTC').dt.tz_localize(None)
    seconds = (series - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=float)


def fine_edges(main_edges: Any, sub_bins: int = 1) -> np.ndarray:
    """Split each main bin into ``sub_bins`` uniform sub-bins.

    Args:
        main_edges (array-like of float):
            Strictly increasing edges.
        sub_bins (int):
            Sub-bins per main bin.

    Returns:
        numpy.ndarray:
            ``(len(main_edges) - 1) * sub_bins + 1`` edges; the main edges are kept exactly.
    """
    main = np.asarray(main_edges, dtype=float)
    if sub_bins <= 1 or len(main) < 2:
        return main.copy()
    parts = [np.linspace(low, high, sub_bins + 1)[:-1] for low, high in zip(main[:-1], main[1:])]
    return np.concatenate(parts + [main[-1:]])


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: right-open bins, the last one closed. Out of range gives -1.

    Args:
        values (numpy.ndarray):
            Float values (NaN allowed, giving -1).
        edges (numpy.ndarray):
            Increasing edges.

    Returns:
        numpy.ndarray:
            Integer bin indices.
    """
    values = np.asarray(values, dtype=float)
    index = np.searchsorted(edges, values, side='right') - 1
    index = np.where(values == edges[-1], len(edges) - 2, index)
    outside = np.isnan(values) | (values < edges[0]) | (values > edges[-1])
    return np.where(outside, -1, index).astype(np.int64)


def find_edge(edges: np.ndarray, value: float) -> int | None:
    """Index of ``value`` in ``edges`` allowing for floating-point noise, or None.

    Args:
        edges (numpy.ndarray):
            Increasing edges.
        value (float):
            The value looked for.

    Returns:
        int or None
    """
    if edges is None or len(edges) == 0 or not math.isfinite(value):
        return None
    position = int(np.searchsorted(edges, value))
    span = float(edges[-1] - edges[0]) if len(edges) > 1 else 1.0
    atol = max(span, abs(float(edges[-1])), abs(float(edges[0])), 1.0) * 1e-9
    for index in (position - 1, position):
        if 0 <= index < len(edges) and abs(edges[index] - value) <= atol:
            return index
    return None


def _statistic_keys(spec: MacroSpec, table_name: str, column: str) -> list[Any]:
    """Scalar keys of ``column`` in the table's statistics, in order of first appearance."""
    table = spec.tables.get(table_name)
    seen = []
    known = set()
    if table is None:
        return seen
    for statistic in table.statistics:
        if column not in statistic.columns:
            continue
        position = list(statistic.columns).index(column)
        for cell in statistic.cells:
            if position >= len(cell.key):
                continue
            part = cell.key[position]
            if isinstance(part, (tuple, list)):
                continue
            marker = (type(part) is bool, part)
            if marker not in known:
                known.add(marker)
                seen.append(part)
    return seen


def _numeric_keys(keys: list[Any]) -> list[float] | None:
    numbers = [k for k in keys if isinstance(k, (int, float)) and not isinstance(k, bool)]
    if not numbers:
        return None
    return sorted(numbers)


def _safe_edges(bins: list | None, kind: str) -> np.ndarray | None:
    if not bins:
        return None
    try:
        edges = np.array([edge_to_float(edge, kind) for edge in bins], dtype=float)
    except (TypeError, ValueError):
        return None
    if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        return None
    return edges


def _resolve_derived(
    spec: MacroSpec, metadata_dict: dict[str, Any], table_name: str, derived: DerivedColumnSpec
) -> ResolvedColumn:
    keys = _statistic_keys(spec, table_name, derived.name)
    if derived.is_boolean:
        categories = [False, True]
        return ResolvedColumn(
            name=derived.name, kind='boolean', categories=categories,
            description=derived.description, derived=derived,
        )

    child_columns = metadata_dict['tables'].get(derived.child_table, {}).get('columns', {})
    child_meta = child_columns.get(derived.column, {}) if derived.column else {}
    if derived.function == 'count' or (derived.function == 'sum' and derived.column is None):
        integer = True
    elif derived.function in ('sum', 'min', 'max'):
        integer = is_integer_representation(child_meta)
    else:
        integer = False

    main = _safe_edges(derived.bins, 'numerical')
    values = list(derived.values) if derived.values is not None else None
    if main is None and values is None:
        values = _numeric_keys(keys)
    column = ResolvedColumn(
        name=derived.name, kind='numerical', integer=integer,
        description=derived.description, derived=derived,
    )
    _set_support(column, main, 1, values)
    return column


def _set_support(column: ResolvedColumn, main: np.ndarray | None, sub_bins: int, values):
    if main is not None:
        column.main_edges = main
        column.sub_bins = max(int(sub_bins), 1)
        column.edges = fine_edges(main, column.sub_bins)
        column.min = float(main[0])
        column.max = float(main[-1])
    elif values:
        column.values = sorted(values)
        column.min = float(column.values[0])
        column.max = float(column.values[-1])


def resolve_columns(spec: MacroSpec, metadata: Any, table_name: str) -> dict[str, ResolvedColumn]:
    """Resolve every column of one table: the metadata's columns, then derived columns.

    Best effort on invalid specs (bad bins are ignored); run
    :func:`sdv_llmsynthor.spec.validation.validate_spec` first to reject them.

    Args:
        spec (MacroSpec):
            The spec.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.
        table_name (str):
            The table.

    Returns:
        dict[str, ResolvedColumn]:
            In metadata column order, then derived columns (the implicit ``<child>__count``
            columns included) in spec order.

    Raises:
        KeyError: if the metadata has no such table.
    """
    metadata_dict = metadata_to_dict(metadata)
    if table_name not in metadata_dict['tables']:
        raise KeyError(
            f"The metadata has no table '{table_name}'. "
            f"Tables: {', '.join(sorted(metadata_dict['tables']))}."
        )

    table_meta = metadata_dict['tables'][table_name]
    table_spec = spec.tables.get(table_name)
    column_specs = table_spec.columns if table_spec is not None else {}
    resolved: dict[str, ResolvedColumn] = {}
    for name, column_meta in table_meta.get('columns', {}).items():
        kind = column_kind(column_meta)
        if name == table_meta.get('primary_key'):
            kind = 'id'
        column_spec = column_specs.get(name)
        column = ResolvedColumn(
            name=name,
            kind=kind,
            integer=is_integer_representation(column_meta),
            datetime_format=column_meta.get('datetime_format'),
            decimal_places=column_meta.get('decimal_places'),
            nullable=bool(column_meta.get('range_is_nullable', True)),
            ordered=column_meta.get('sdtype') == 'ordinal',
            sdtype=column_meta.get('sdtype'),
        )
        if column_spec is not None:
            column.missing_proportion = float(column_spec.missing_proportion)
            column.description = column_spec.description

        if kind in ('categorical', 'boolean', 'other'):
            if column_spec is not None and column_spec.categories is not None:
                column.categories = list(column_spec.categories)
            elif column_meta.get('range_values'):
                column.categories = list(column_meta['range_values'])
            else:
                keys = _statistic_keys(spec, table_name, name)
                if kind == 'boolean' and not keys:
                    keys = [False, True]
                column.categories = keys or None
        elif kind in ('numerical', 'datetime'):
            main = None
            sub_bins = 1
            values = None
            if column_spec is not None:
                main = _safe_edges(column_spec.bins, kind)
                sub_bins = column_spec.sub_bins
                values = list(column_spec.values) if column_spec.values is not None else None
            if main is None and values is None:
                values = _numeric_keys(_statistic_keys(spec, table_name, name))
            _set_support(column, main, sub_bins, values)
            if column.min is None and column.max is None:
                column.min, column.max = metadata_range(column_meta, kind)

        resolved[name] = column

    if table_spec is not None:
        derived_columns = dict(table_spec.derived_columns)
    else:
        derived_columns = {}
    # The implicit child-count columns exist for every relationship of the spec or the
    # metadata, even when the spec has no entry for the table.
    children = [rel.child_table for rel in spec.relationships if rel.parent_table == table_name]
    children += [rel['child_table_name'] for rel in metadata_dict['relationships']
                 if rel.get('parent_table_name') == table_name]
    for child in dict.fromkeys(children):
        count_name = child_count_column(child)
        if count_name not in derived_columns:
            derived_columns[count_name] = DerivedColumnSpec(
                name=count_name, child_table=child, function='count', implicit=True,
            )

    for name, derived in derived_columns.items():
        resolved[name] = _resolve_derived(spec, metadata_dict, table_name, derived)

    return resolved


def primary_key(metadata: Any, table_name: str) -> str | None:
    """The table's primary key in the metadata, if any."""
    return metadata_to_dict(metadata)['tables'].get(table_name, {}).get('primary_key')


def modelled_columns(resolved: dict[str, ResolvedColumn]) -> list[str]:
    """Columns the engine synthesises from the spec (not ids, not PII, not derived).

    Args:
        resolved (dict[str, ResolvedColumn]):
            From :func:`resolve_columns`.

    Returns:
        list[str]
    """
    return [
        name for name, column in resolved.items()
        if column.derived is None and column.kind in ('categorical', 'boolean', 'numerical',
                                                      'datetime')
    ]
