"""Read SDV DayZ parameters as a macro-statistics spec.

SDV's DayZ parameters (``sdv.single_table.dayz`` / ``sdv.multi_table.dayz``, spec version
``V1``) describe a dataset without rows::

    {
      "DAYZ_SPEC_VERSION": "V1",
      "tables": {
        "<table>": {
          "num_rows": 500,
          "columns": {
            "<numerical>": {"missing_values_proportion": 0.0, "min_value": 0,
                            "max_value": 10, "num_decimal_digits": 0},
            "<datetime>": {"missing_values_proportion": 0.0,
                           "start_timestamp": "2020-01-01", "end_timestamp": "2020-12-31"},
            "<categorical>": {"missing_values_proportion": 0.1, "category_values": ["a", "b"]},
            "<other>": {"missing_values_proportion": 0.0}
          }
        }
      },
      "relationships": {
        "[\\"parent\\", \\"child\\", \\"parent_pk\\", \\"child_fk\\"]":
            {"min_cardinality": 1, "max_cardinality": 4}
      }
    }

They map to a spec as follows: ``num_rows`` to ``num_rows``; a numeric range to uniform bins
over ``[min_value, max_value]`` (integer ranges of at most ``MAX_DISCRETE_VALUES`` values to
``values``); a datetime range to uniform bins between the two timestamps; ``category_values`` to
``categories``; ``missing_values_proportion`` to ``missing_proportion``; a relationship's
cardinality range to a child-count distribution uniform over the integers from min to max.
No statistic is added: without one, values are spread uniformly over the bins, categories and
values.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.derive import round_proportions
from sdv_llmsynthor.spec.model import (
    Cell,
    ColumnSpec,
    MacroSpec,
    RelationshipSpec,
    StatisticSpec,
    TableSpec,
    child_count_column,
)
from sdv_llmsynthor.spec.resolve import (
    column_kind,
    is_integer_representation,
    metadata_to_dict,
    seconds_to_iso,
)
from sdv_llmsynthor.spec.schema import json_path

DAYZ_SPEC_VERSION = 'V1'
#: Integer ranges with at most this many values become a discrete ``values`` support.
MAX_DISCRETE_VALUES = 20


def _clean(value: float) -> int | float:
    value = float(value)
    if value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return float(f'{value:.12g}')


def _numeric_column(name: str, params: dict[str, Any], integer: bool, num_bins: int
                    ) -> ColumnSpec:
    column = ColumnSpec(name=name)
    low, high = params.get('min_value'), params.get('max_value')
    if low is None or high is None:
        return column
    low, high = float(low), float(high)
    digits = params.get('num_decimal_digits')
    integer = integer or digits == 0
    if integer and high - low + 1 <= MAX_DISCRETE_VALUES:
        column.values = [_clean(v) for v in np.arange(math.ceil(low), math.floor(high) + 1)]
        return column
    if high <= low:
        column.values = [_clean(low)]
        return column
    edges = np.linspace(low, high, num_bins + 1)
    if isinstance(digits, int) and digits >= 0:
        edges[1:-1] = np.round(edges[1:-1], digits)
    edges = np.unique(edges)
    column.bins = [_clean(edge) for edge in edges]
    return column


def _datetime_column(name: str, params: dict[str, Any], datetime_format: str | None,
                     num_bins: int) -> ColumnSpec:
    column = ColumnSpec(name=name)
    start, end = params.get('start_timestamp'), params.get('end_timestamp')
    if start is None or end is None:
        return column
    start_time = pd.to_datetime(start, format=datetime_format)
    end_time = pd.to_datetime(end, format=datetime_format)
    low = (start_time - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    high = (end_time - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    if high <= low:
        high = low + 86400.0
    edges = np.unique(np.round(np.linspace(low, high, num_bins + 1)))
    column.bins = [seconds_to_iso(edge) for edge in edges]
    return column


def _relationship_entries(relationships: Any) -> list[tuple[list, dict[str, Any], list]]:
    """``(path parts, parameters, [parent, child, parent_pk, child_fk])`` per relationship."""
    entries = []
    if isinstance(relationships, Mapping):
        for key, value in relationships.items():
            try:
                names = json.loads(key) if isinstance(key, str) else list(key)
            except json.JSONDecodeError:
                names = None
            entries.append((['relationships', key], value, names))
    elif isinstance(relationships, list):
        for index, value in enumerate(relationships):
            names = [value.get('parent_table_name'), value.get('child_table_name'),
                     value.get('parent_primary_key'), value.get('child_foreign_key')]
            entries.append((['relationships', index], value, names))
    return entries


def spec_from_dayz_parameters(params: Mapping[str, Any] | str | os.PathLike, metadata: Any,
                              num_bins: int = 10) -> MacroSpec:
    """Build a spec from SDV DayZ parameters (a dict, or the path of its JSON file).

    Args:
        params (dict, str or PathLike):
            DayZ parameters as made by ``DayZSynthesizer.create_parameters`` (single or multi
            table), or the JSON file it wrote.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata the parameters belong to.
        num_bins (int):
            Uniform bins per numeric or datetime range. Defaults to 10.

    Returns:
        MacroSpec:
            A spec with ``num_rows``, bins, values, categories, missing proportions and
            child-count distributions, and no statistics.

    Raises:
        SpecValidationError: if the parameters name unknown tables, columns or relationships,
            have another spec version, or are malformed (paths point into the parameters).
    """
    if isinstance(params, (str, os.PathLike)):
        with open(params, encoding='utf-8') as handle:
            params = json.load(handle)

    problems: list[tuple[str, str]] = []
    if not isinstance(params, Mapping):
        raise SpecValidationError([('$', 'DayZ parameters must be a JSON object.')])
    version = params.get('DAYZ_SPEC_VERSION', DAYZ_SPEC_VERSION)
    if version != DAYZ_SPEC_VERSION:
        problems.append(('$.DAYZ_SPEC_VERSION',
                         f'unsupported DayZ spec version {version!r}; expected '
                         f'{DAYZ_SPEC_VERSION!r}.'))

    metadata_dict = metadata_to_dict(metadata)
    meta_tables = metadata_dict['tables']
    tables: dict[str, TableSpec] = {name: TableSpec(name=name) for name in meta_tables}
    table_params = params.get('tables', {})
    if not isinstance(table_params, Mapping):
        problems.append(('$.tables', 'expected an object of table parameters.'))
        table_params = {}

    for table_name, table_data in table_params.items():
        base = ['tables', table_name]
        if table_name not in meta_tables:
            problems.append((json_path(base), f"unknown table '{table_name}': the metadata has "
                                              f'tables {sorted(meta_tables)}.'))
            continue
        table = tables[table_name]
        num_rows = table_data.get('num_rows')
        if num_rows is not None:
            if isinstance(num_rows, bool) or not isinstance(num_rows, (int, np.integer)) or (
                    num_rows <= 0):
                problems.append((json_path(base + ['num_rows']),
                                 f'{num_rows!r} is not a positive integer.'))
            else:
                table.num_rows = int(num_rows)

        meta_columns = meta_tables[table_name].get('columns', {})
        for column_name, column_params in (table_data.get('columns') or {}).items():
            path = base + ['columns', column_name]
            if column_name not in meta_columns:
                problems.append((json_path(path), f"unknown column '{column_name}' in table "
                                                  f"'{table_name}'."))
                continue
            column_meta = meta_columns[column_name]
            kind = column_kind(column_meta)
            if kind == 'numerical':
                column = _numeric_column(column_name, column_params,
                                         is_integer_representation(column_meta), num_bins)
            elif kind == 'datetime':
                try:
                    column = _datetime_column(column_name, column_params,
                                              column_meta.get('datetime_format'), num_bins)
                except (ValueError, TypeError) as err:
                    problems.append((json_path(path), f'bad timestamp: {err}'))
                    continue
            elif kind == 'categorical':
                column = ColumnSpec(name=column_name)
                categories = column_params.get('category_values')
                if categories:
                    column.categories = list(dict.fromkeys(categories))
            else:
                column = ColumnSpec(name=column_name)

            missing = column_params.get('missing_values_proportion', 0.0)
            if not isinstance(missing, (int, float)) or not 0.0 <= missing <= 1.0:
                problems.append((json_path(path + ['missing_values_proportion']),
                                 f'{missing!r} is not a proportion between 0 and 1.'))
            elif kind != 'id':
                column.missing_proportion = float(missing)
            if column.to_dict() and kind != 'id':
                table.columns[column_name] = column

    relationships = []
    for parts, rel_params, names in _relationship_entries(params.get('relationships')):
        path = json_path(parts)
        if not names or len(names) < 2:
            problems.append((path, 'expected the key [parent, child, parent_pk, child_fk].'))
            continue
        parent, child = names[0], names[1]
        known = any(r.get('parent_table_name') == parent and r.get('child_table_name') == child
                    for r in metadata_dict['relationships'])
        if not known:
            problems.append((path, f"the metadata has no relationship from '{parent}' to "
                                   f"'{child}'."))
            continue
        low = rel_params.get('min_cardinality')
        high = rel_params.get('max_cardinality')
        child_count = None
        if low is not None and high is not None:
            low, high = float(low), float(high)
            if low < 0 or high < low or not low.is_integer() or not high.is_integer():
                problems.append((path, f'cardinality range [{low:g}, {high:g}] is not a range '
                                       'of non-negative integers.'))
                continue
            sizes = list(range(int(low), int(high) + 1))
            child_count = StatisticSpec(
                name=f'child_count:{child}', columns=(child_count_column(child),),
                cells=[Cell((size,), share)
                       for size, share in zip(sizes, round_proportions([1] * len(sizes)))],
                implicit=True, source='DayZ parameters (uniform over the cardinality range)',
            )
        relationships.append(RelationshipSpec(
            parent_table=parent, child_table=child,
            parent_primary_key=names[2] if len(names) > 2 else None,
            child_foreign_key=names[3] if len(names) > 3 else None,
            child_count=child_count,
        ))

    if problems:
        raise SpecValidationError(problems)

    spec = MacroSpec(tables, relationships, name='DayZ parameters')
    spec._attach_child_counts()
    return spec
