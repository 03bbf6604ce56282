"""Check a spec against SDV metadata and for internal consistency.

The JSON Schema checks the shape of the document (:mod:`sdv_llmsynthor.spec.schema`); this
module checks what needs the metadata or several parts of the spec at once: tables and columns
exist, keys fit their columns (categories, bins, intervals), proportions add up, joints agree
with marginals, relationships exist, expressions parse and name known columns. Every problem is
collected with the JSON path of the offending value in the spec document, then
:class:`~sdv_llmsynthor.errors.SpecValidationError` is raised once.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdv_llmsynthor.errors import ExpressionError, SpecValidationError
from sdv_llmsynthor.spec.geography import geography_problems
from sdv_llmsynthor.spec.model import MacroSpec, StatisticSpec
from sdv_llmsynthor.spec.resolve import (
    ResolvedColumn,
    edge_to_float,
    find_metadata_relationship,
    metadata_to_dict,
    resolve_columns,
    seconds_to_iso,
)
from sdv_llmsynthor.spec.schema import json_path, schema_problems

#: Slack on the sum of a complete proportion table (rounding in published tables).
SUM_SLACK = 0.005
#: Slack on the difference between a joint's margin and a marginal, added to the tolerances.
CONSISTENCY_SLACK = 0.005
_EPS = 1e-9
_NEEDS_COLUMN = ('min', 'max', 'sum', 'mean')
_MAX_LISTED = 12


def validate_spec(spec: MacroSpec | dict[str, Any], metadata: Any) -> None:
    """Check a spec against SDV metadata and for internal consistency.

    Args:
        spec (MacroSpec or dict):
            The spec, or its JSON document (then checked against the JSON Schema first).
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata (a single-table metadata has one table).

    Raises:
        SpecValidationError: listing every problem as ``(json_path, message)``.
    """
    problems = spec_problems(spec, metadata)
    if problems:
        raise SpecValidationError(problems)


def spec_problems(spec: MacroSpec | dict[str, Any], metadata: Any) -> list[tuple[str, str]]:
    """Collect every problem of a spec without raising.

    Args:
        spec (MacroSpec or dict):
            The spec, or its JSON document.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.

    Returns:
        list[tuple[str, str]]:
            ``(json_path, message)`` pairs in document order; empty when the spec is valid.
    """
    if isinstance(spec, dict):
        problems = schema_problems(spec)
        if problems:
            return problems
        spec = MacroSpec.from_dict(spec)

    return _Validator(spec, metadata_to_dict(metadata)).run()


def bin_edge_problems(path: Sequence[Any], bins: Sequence[Any], kind: str
                      ) -> list[tuple[str, str]]:
    """Check bin edges: each a finite number (an ISO date for datetime), strictly increasing.

    Args:
        path (list):
            JSON path parts of the edge list (e.g. ``['tables', 't', 'columns', 'age',
            'bins']``).
        bins (list):
            The edges.
        kind (str):
            ``'numerical'`` or ``'datetime'``.

    Returns:
        list[tuple[str, str]]:
            ``(json_path, message)`` pairs; empty when the edges are usable.
    """
    path = list(path)
    problems = []
    edges = []
    for index, edge in enumerate(bins):
        try:
            edges.append(edge_to_float(edge, kind))
        except (TypeError, ValueError):
            expected = ('an ISO-8601 date or datetime such as "2024-01-31"'
                        if kind == 'datetime' else 'a number')
            problems.append((json_path(path + [index]), f'bin edge {edge!r} is not {expected}.'))
            continue
        if not np.isfinite(edges[-1]):
            problems.append((json_path(path + [index]), f'bin edge {edge!r} is not finite.'))
    if problems:
        return problems
    for index in range(1, len(edges)):
        if edges[index] <= edges[index - 1]:
            return [(json_path(path + [index]),
                     f'bins must be strictly increasing: {bins[index]!r} follows '
                     f'{bins[index - 1]!r}.')]
    return []


def data_problems(spec: MacroSpec, metadata: Any, data: Any) -> list[tuple[str, str]]:
    """Collect the categories a spec names that the fit data does not have.

    A spec given together with real rows must describe those rows: a category (in a column's
    ``categories``, or in a non-zero cell key of a statistic on a column without declared
    categories) that no row holds is almost always a typo or a spec written for other data,
    and the loop would chase a share nothing supports.

    Args:
        spec (MacroSpec):
            A spec that already passed :func:`validate_spec`.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.
        data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            The fit rows, by table name (a DataFrame for a single-table spec).

    Returns:
        list[tuple[str, str]]:
            ``(json_path, message)`` pairs; empty when every category occurs in the data.
    """
    metadata = metadata_to_dict(metadata)
    if not isinstance(data, dict):
        data = {next(iter(spec.tables)): data}
    problems: list[tuple[str, str]] = []
    for table_name, table in spec.tables.items():
        frame = data.get(table_name)
        if frame is not None and table_name in metadata['tables']:
            resolved = resolve_columns(spec, metadata, table_name)
            problems += _ObservedCategories(table_name, frame, resolved).problems(table)
    return problems


class _ObservedCategories:
    """The categories each categorical column of one fit table holds (computed on demand)."""

    def __init__(self, table_name: str, frame: Any, resolved: dict[str, ResolvedColumn]):
        self.table_name = table_name
        self.frame = frame
        self.resolved = resolved
        self._cache: dict[str, tuple[set, list]] = {}

    def get(self, column: str) -> tuple[set, list] | None:
        info = self.resolved.get(column)
        if (info is None or info.derived is not None or info.kind != 'categorical'
                or column not in self.frame.columns):
            return None
        if column not in self._cache:
            values = [v.item() if hasattr(v, 'item') else v
                      for v in self.frame[column].dropna().unique()]
            self._cache[column] = ({_marker(v) for v in values}, values)
        return self._cache[column]

    def problems(self, table) -> list[tuple[str, str]]:
        problems = []
        base = ['tables', self.table_name]
        for name, column in table.columns.items():
            seen = self.get(name) if column.categories is not None else None
            if seen is None:
                continue
            for index, category in enumerate(column.categories):
                if _marker(category) not in seen[0]:
                    problems.append((
                        json_path(base + ['columns', name, 'categories', index]),
                        f"category {_render(category)} of '{name}' does not occur in the fit "
                        f'data (its {len(self.frame)} rows of {self.table_name!r} hold '
                        f'{_listing(sorted(map(str, seen[1])))}).'
                        f'{suggest(str(category), [str(v) for v in seen[1]])}'))
        explicit = [statistic for statistic in table.statistics if not statistic.implicit]
        for index, statistic in enumerate(explicit):
            for position, column in enumerate(statistic.columns):
                column_spec = table.columns.get(column)
                if column_spec is not None and column_spec.categories is not None:
                    continue  # its categories were checked above
                seen = self.get(column)
                if seen is None:
                    continue
                for cell_index, cell in enumerate(statistic.cells):
                    part = cell.key[position]
                    if cell.value and not _is_interval(part) and _marker(part) not in seen[0]:
                        problems.append((
                            json_path(base + ['statistics', index, 'cells', cell_index, 'key',
                                              position]),
                            f"category {_render(part)} of '{column}' does not occur in the "
                            f'fit data, yet the cell gives it {cell.value!r}.'
                            f'{suggest(str(part), [str(v) for v in seen[1]])}'))
        return problems


def validate_spec_against_data(spec: MacroSpec, metadata: Any, data: Any) -> None:
    """Raise :class:`SpecValidationError` when the spec names categories the data lacks.

    See :func:`data_problems`.
    """
    problems = data_problems(spec, metadata, data)
    if problems:
        raise SpecValidationError(problems)


def suggest(name: str, candidates: Sequence[str]) -> str:
    """A " Did you mean ...?" hint with the closest names, or an empty string."""
    matches = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.6)
    if not matches:
        return ''
    return ' Did you mean ' + ' or '.join(repr(m) for m in matches) + '?'


def _listing(values: Sequence[Any]) -> str:
    shown = [repr(v) for v in list(values)[:_MAX_LISTED]]
    if len(values) > _MAX_LISTED:
        shown.append(f'... ({len(values)} in all)')
    return '[' + ', '.join(shown) + ']'


def _marker(part: Any) -> tuple:
    """A hashable identity for a scalar key part that keeps True apart from 1."""
    if isinstance(part, bool):
        return ('b', part)
    if isinstance(part, (int, float)):
        return ('n', float(part))
    return ('s', part)


def _is_interval(part: Any) -> bool:
    return isinstance(part, (tuple, list))


@dataclass
class _Checked:
    """A statistic after its keys were checked: normalised keys of its valid cells."""

    statistic: StatisticSpec
    path: list
    columns_ok: bool = True
    keys_ok: bool = True
    # One normalised key per valid cell: scalars as markers, intervals as (lo, hi) fine indices.
    keys: list[tuple] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    cell_indices: list[int] = field(default_factory=list)


class _Validator:
    def __init__(self, spec: MacroSpec, metadata: dict[str, Any]):
        self.spec = spec
        self.metadata = metadata
        self.problems: list[tuple[str, str]] = []

    def add(self, parts: Sequence[Any], message: str) -> None:
        self.problems.append((json_path(self._document_path(list(parts))), message))

    def _document_path(self, parts: list) -> list:
        """Map the cells of a statistic given per zone to where the document has them.

        A spec 1.1 statistic with a ``level`` lists ``keys`` and ``zones``; its cells are
        made by the loader, so ``cells[j].key`` is ``keys[j]`` and a cell's value is the sum
        of the zones' counts.
        """
        if len(parts) < 5 or parts[0] != 'tables' or parts[2] != 'statistics' or \
                parts[4] != 'cells' or not isinstance(parts[3], int):
            return parts
        table = self.spec.tables.get(parts[1])
        explicit = [s for s in table.statistics if not s.implicit] if table else []
        if parts[3] >= len(explicit) or explicit[parts[3]].level is None:
            return parts
        head = parts[:4]
        if len(parts) >= 7 and parts[6] == 'key':
            return head + ['keys', parts[5]] + parts[7:]
        return head + ['zones']

    # ------------------------------------------------------------------ entry point
    def run(self) -> list[tuple[str, str]]:
        meta_tables = self.metadata['tables']
        for table_name in self.spec.tables:
            if table_name not in meta_tables:
                self.add(['tables', table_name],
                         f"unknown table '{table_name}': the metadata has tables "
                         f'{_listing(sorted(meta_tables))}.{suggest(table_name, meta_tables)}')

        self._check_relationships()
        for table_name in meta_tables:
            self._check_table(table_name)
        geography_problems(self.spec, self.add)

        return self.problems

    # ------------------------------------------------------------------ relationships
    def _check_relationships(self) -> None:
        meta_tables = self.metadata['tables']
        seen = {}
        for index, rel in enumerate(self.spec.relationships):
            base = ['relationships', index]
            missing = False
            for attr in ('parent_table', 'child_table'):
                table = getattr(rel, attr)
                if table not in meta_tables:
                    missing = True
                    self.add(base + [attr],
                             f"unknown table '{table}': the metadata has tables "
                             f'{_listing(sorted(meta_tables))}.{suggest(table, meta_tables)}')
            if missing:
                continue

            pair = (rel.parent_table, rel.child_table)
            if pair in seen:
                self.add(base, f"relationship {rel.parent_table} -> {rel.child_table} is "
                               f'already declared at relationships[{seen[pair]}].')
            seen[pair] = index
            meta_rel = find_metadata_relationship(self.metadata, *pair)
            if meta_rel is None:
                what = 'child_count' if rel.child_count is not None else 'relationship'
                self.add(base + (['child_count'] if rel.child_count is not None else []),
                         f'{what} on a relationship the metadata does not have: no '
                         f"relationship from '{rel.parent_table}' to '{rel.child_table}' in the "
                         'metadata. Add it to the metadata or remove it from the spec.')
                continue

            for attr, meta_attr in (('parent_primary_key', 'parent_primary_key'),
                                    ('child_foreign_key', 'child_foreign_key')):
                value = getattr(rel, attr)
                if value is not None and value != meta_rel.get(meta_attr):
                    self.add(base + [attr], f"'{value}' does not match the metadata's "
                                            f"{meta_attr} '{meta_rel.get(meta_attr)}'.")

    def _relationship_index(self, statistic: StatisticSpec) -> int | None:
        for index, rel in enumerate(self.spec.relationships):
            if rel.child_count is statistic:
                return index
        return None

    # ------------------------------------------------------------------ tables
    def _check_table(self, table_name: str) -> None:
        table_meta = self.metadata['tables'][table_name]
        meta_columns = table_meta.get('columns', {})
        table = self.spec.tables.get(table_name)
        self._table_name = table_name
        resolved = resolve_columns(self.spec, self.metadata, table_name)
        base = ['tables', table_name]
        bad_columns: set[str] = set()

        if table is not None:
            for name, column in table.columns.items():
                path = base + ['columns', name]
                if name not in meta_columns:
                    self.add(path, f"unknown column '{name}' in table '{table_name}': the "
                                   f'metadata has {_listing(list(meta_columns))}.'
                                   f'{suggest(name, list(meta_columns))}')
                    continue
                if not self._check_column(path, column, resolved[name], meta_columns[name]):
                    bad_columns.add(name)

            for name, derived in table.derived_columns.items():
                if derived.implicit:
                    continue
                path = base + ['derived_columns', name]
                if not self._check_derived(table_name, path, name, derived):
                    bad_columns.add(name)

        if table is None:
            # A metadata table the spec says nothing about, except maybe its child counts.
            for rel in self.spec.relationships:
                if rel.parent_table == table_name and rel.child_count is not None:
                    base = self._statistic_base(table_name, rel.child_count, -1)
                    self._check_statistic(table_name, rel.child_count, base, resolved, set())
            return
        self._check_nothing_to_sample(table_name, resolved)

        checked = self._check_statistics(table_name, resolved, bad_columns)
        self._check_consistency(resolved, checked)
        self._check_rules(table_name, resolved)

    def _check_column(self, path: list, column, info: ResolvedColumn,
                      column_meta: dict[str, Any]) -> bool:
        """Check one column entry; return False when its bins are unusable."""
        kind = info.kind
        ok = True
        known = column_meta.get('range_values')
        if column.categories is not None:
            if kind == 'categorical' and known:
                allowed = {_marker(value) for value in known}
                for index, category in enumerate(column.categories):
                    if _marker(category) not in allowed:
                        self.add(path + ['categories', index],
                                 f'category {_render(category)} is not in the metadata\'s '
                                 f'range_values for \'{info.name}\': {_listing(known)}.'
                                 f'{suggest(str(category), [str(k) for k in known])}')
            elif kind == 'boolean':
                for index, category in enumerate(column.categories):
                    if not isinstance(category, bool):
                        self.add(path + ['categories', index],
                                 f'{category!r} is not a boolean: the column is boolean, its '
                                 'categories are true and false.')
            elif kind in ('numerical', 'datetime', 'id'):
                self.add(path + ['categories'],
                         f"categories are for categorical or boolean columns; '{info.name}' is "
                         f"{info.sdtype}." + (' Use values for a discrete numeric support.'
                                              if kind == 'numerical' else ''))

        if column.values is not None and kind != 'numerical':
            self.add(path + ['values'],
                     f"values are for numerical columns; '{info.name}' is {info.sdtype}.")

        if column.bins is not None:
            if kind not in ('numerical', 'datetime'):
                self.add(path + ['bins'],
                         f"bins are for numerical or datetime columns; '{info.name}' is "
                         f'{info.sdtype}.')
                ok = False
            elif not self._check_bins(path + ['bins'], column.bins, kind):
                ok = False
        return ok

    def _check_bins(self, path: list, bins: list, kind: str) -> bool:
        problems = bin_edge_problems(path, bins, kind)
        self.problems.extend(problems)
        return not problems

    def _check_derived(self, table_name: str, path: list, name: str, derived) -> bool:
        meta_tables = self.metadata['tables']
        meta_columns = meta_tables[table_name].get('columns', {})
        ok = True
        if name in meta_columns:
            self.add(path, f"derived column '{name}' has the name of a column of table "
                           f"'{table_name}'; choose another name.")
        child = derived.child_table
        if child not in meta_tables:
            self.add(path + ['child_table'],
                     f"unknown table '{child}': the metadata has tables "
                     f'{_listing(sorted(meta_tables))}.{suggest(child, meta_tables)}')
            return False
        if find_metadata_relationship(self.metadata, table_name, child) is None:
            children = [r['child_table_name'] for r in self.metadata['relationships']
                        if r.get('parent_table_name') == table_name]
            self.add(path + ['child_table'],
                     f"'{child}' is not a child table of '{table_name}' in the metadata "
                     f'(children: {_listing(children)}).')
            return False

        child_columns = meta_tables[child].get('columns', {})
        if derived.function in _NEEDS_COLUMN and derived.column is None:
            self.add(path, f"function '{derived.function}' needs 'column': the child column "
                           'to aggregate.')
            ok = False
        if derived.column is not None:
            if derived.column not in child_columns:
                self.add(path + ['column'],
                         f"unknown column '{derived.column}' in child table '{child}'."
                         f'{suggest(derived.column, list(child_columns))}')
                ok = False
            elif derived.function in _NEEDS_COLUMN and (
                    child_columns[derived.column].get('sdtype') != 'numerical'):
                self.add(path + ['column'],
                         f"'{derived.column}' is {child_columns[derived.column].get('sdtype')};"
                         f" function '{derived.function}' needs a numerical column.")
                ok = False
            elif derived.function not in _NEEDS_COLUMN:
                self.add(path + ['column'],
                         f"function '{derived.function}' takes no column; it uses the "
                         'predicate.')
        if derived.function in ('any', 'all'):
            if derived.predicate is None:
                self.add(path, f"function '{derived.function}' needs a 'predicate'.")
                ok = False
            for attr in ('bins', 'values'):
                if getattr(derived, attr) is not None:
                    self.add(path + [attr], f"function '{derived.function}' gives booleans; "
                                            f'it takes no {attr}.')
        if derived.bins is not None and derived.values is not None:
            self.add(path, 'give bins or values, not both.')
            ok = False
        if derived.bins is not None and not self._check_bins(
                path + ['bins'], derived.bins, 'numerical'):
            ok = False
        if derived.predicate is not None:
            self._check_expression(path + ['predicate'], derived.predicate,
                                   list(child_columns), f"child table '{child}'")
        return ok

    def _check_nothing_to_sample(self, table_name: str, resolved: dict[str, ResolvedColumn]):
        for name, info in resolved.items():
            if info.kind == 'categorical' and not info.categories and info.derived is None:
                self.add(['tables', table_name, 'columns', name],
                         f"categorical column '{name}' has no categories and no statistic: "
                         'there is nothing to sample it from. Add "categories" or a '
                         'statistic.')

    # ------------------------------------------------------------------ statistics
    def _statistic_base(self, table_name: str, statistic: StatisticSpec, index: int) -> list:
        if statistic.implicit:
            rel_index = self._relationship_index(statistic)
            return ['relationships', rel_index, 'child_count']
        return ['tables', table_name, 'statistics', index]

    def _check_statistics(self, table_name, resolved, bad_columns) -> list[_Checked]:
        table = self.spec.tables[table_name]
        names: dict[str, int] = {}
        checked = []
        explicit_index = 0
        for statistic in table.statistics:
            if statistic.implicit:
                base = self._statistic_base(table_name, statistic, -1)
                if base[1] is None:
                    continue
            else:
                base = self._statistic_base(table_name, statistic, explicit_index)
                explicit_index += 1
                if statistic.name in names:
                    self.add(base + ['name'],
                             f"duplicate statistic name '{statistic.name}' (also "
                             f'statistics[{names[statistic.name]}]); names must be unique '
                             'within a table.')
                else:
                    names[statistic.name] = base[-1]

            checked.append(self._check_statistic(table_name, statistic, base, resolved,
                                                 bad_columns))
        return checked

    def _check_statistic(self, table_name, statistic, base, resolved, bad_columns) -> _Checked:
        result = _Checked(statistic, base)
        infos = []
        for position, name in enumerate(statistic.columns):
            info = resolved.get(name)
            path = base if statistic.implicit else base + ['columns', position]
            if info is None:
                known = list(resolved)
                self.add(path, f"unknown column '{name}' in table '{table_name}'."
                               f'{suggest(name, known)} Known columns: {_listing(known)}.')
                result.columns_ok = False
            elif info.kind == 'id':
                self.add(path, f"'{name}' is an id column; statistics cannot use it.")
                result.columns_ok = False
            elif name in bad_columns:
                result.columns_ok = False
            infos.append(info)

        if statistic.implicit:
            self._check_child_count_keys(statistic, base)

        table = self.spec.tables.get(table_name)
        num_rows = table.num_rows if table is not None else None
        shares = statistic.proportions(num_rows)
        seen_keys: dict[tuple, int] = {}
        for cell_index, cell in enumerate(statistic.cells):
            cell_path = base + ['cells', cell_index]
            if cell.value < 0:
                self.add(cell_path + ['value'], f'{cell.value} is negative: counts and '
                                                'proportions must be >= 0.')
                result.keys_ok = False
            if len(cell.key) != len(statistic.columns):
                self.add(cell_path + ['key'],
                         f'the key has {len(cell.key)} parts but the statistic has '
                         f'{len(statistic.columns)} columns {_listing(list(statistic.columns))}.')
                result.keys_ok = False
                continue
            if not result.columns_ok:
                continue

            key = []
            for position, (part, info) in enumerate(zip(cell.key, infos)):
                normal = self._check_key_part(cell_path + ['key', position], part, info)
                key.append(normal)
            if any(part is None for part in key):
                result.keys_ok = False
                continue
            key = tuple(key)
            if key in seen_keys:
                self.add(cell_path + ['key'],
                         f'duplicate key {_render_key(cell.key)}: the same cell is already '
                         f'cells[{seen_keys[key]}].')
                result.keys_ok = False
                continue
            seen_keys[key] = cell_index
            result.keys.append(key)
            result.cell_indices.append(cell_index)
            result.shares.append(shares.get(cell.key, 0.0))

        if result.columns_ok and result.keys_ok:
            if not self._check_overlaps(statistic, base, result):
                result.keys_ok = False
        if not self._check_sum(statistic, base, num_rows):
            result.keys_ok = False  # no consistency check against a table that does not add up
        return result

    def _check_child_count_keys(self, statistic: StatisticSpec, base: list) -> None:
        for cell_index, cell in enumerate(statistic.cells):
            if len(cell.key) != 1:
                continue  # reported as a wrong arity
            part = cell.key[0]
            path = base + ['cells', cell_index, 'key', 0]
            if (isinstance(part, bool) or not isinstance(part, (int, float))
                    or not float(part).is_integer()):
                self.add(path, f'{part!r} is not a number of child rows: child_count keys are '
                               'integers.')
            elif part < 0:
                self.add(path, f'{part!r} is negative: child_count keys are numbers of rows.')

    def _check_key_part(self, path: list, part: Any, info: ResolvedColumn):
        """Check one key coordinate; return its normalised form or None when invalid."""
        name = info.name
        if info.derived is not None and info.derived.implicit and info.kind == 'numerical':
            # Child counts: keys checked by _check_child_count_keys (or like any value).
            if _is_interval(part) and info.edges is None:
                self.add(path, f"'{name}' has no bins: its keys are numbers of child rows.")
                return None
            if not _is_interval(part):
                if isinstance(part, bool) or not isinstance(part, (int, float)):
                    return None
                return _marker(part)

        if info.kind == 'boolean':
            if not isinstance(part, bool):
                self.add(path, f"{_render(part)} is not a boolean: '{name}' is boolean, its keys "
                               'are true or false.')
                return None
            if info.categories and _marker(part) not in {_marker(c) for c in info.categories}:
                self.add(path, f"{_render(part)} is not a category of '{name}': expected one of "
                               f'{_listing(info.categories)}.')
                return None
            return _marker(part)

        if info.kind in ('categorical', 'other'):
            if _is_interval(part):
                self.add(path, f"an interval is not a category: '{name}' is "
                               f"{info.sdtype or info.kind}; expected one of its categories.")
                return None
            declared = self._declared_categories(info)
            if declared is not None and _marker(part) not in {_marker(c) for c in declared}:
                self.add(path, f"unknown category {_render(part)} for column '{name}': expected "
                               f'one of {_listing(declared)}.{suggest(str(part), declared)}')
                return None
            return _marker(part)

        # numerical / datetime, real or derived
        if info.edges is not None:
            if not _is_interval(part):
                low, high = _edge_label(info, 0), _edge_label(info, len(info.edges) - 1)
                self.add(path, f"{_render(part)} is not an interval: '{name}' has bins, so its "
                               f'keys are [low, high] on its edges (from {low} to {high}).')
                return None
            indices = []
            for end in (0, 1):
                index = info.edge_index(part[end])
                if index is None:
                    self.add(path + [end],
                             f"{_render(part[end])} is not an edge of the bins or sub-bins of "
                             f"'{name}': edges are {_listing(_edge_labels(info))}.")
                indices.append(index)
            if None in indices:
                return None
            if indices[1] <= indices[0]:
                self.add(path, f'the interval {_render(part)} is empty: its low end must be below '
                               'its high end.')
                return None
            return ('i', indices[0], indices[1])

        if _is_interval(part):
            self.add(path, f"'{name}' has no bins: add \"bins\" to the column to key it by "
                           'intervals, or use single values.')
            return None
        if info.kind == 'datetime':
            self.add(path, f"'{name}' is a datetime column without bins: add \"bins\" and key "
                           'it by intervals.')
            return None
        if isinstance(part, bool) or not isinstance(part, (int, float)):
            self.add(path, f"{_render(part)} is not a number: '{name}' is numerical.")
            return None
        declared = self._declared_values(info)
        if declared is not None and _marker(part) not in {_marker(v) for v in declared}:
            self.add(path, f"{_render(part)} is not one of the values of '{name}': expected one "
                           f'of {_listing(declared)}.')
            return None
        return _marker(part)

    def _column_spec(self, name: str):
        table = self.spec.tables.get(self._table_name)
        return table.columns.get(name) if table is not None else None

    def _declared_categories(self, info: ResolvedColumn) -> list | None:
        """The spec's categories, else the metadata's range_values, else None."""
        if info.derived is not None:
            return None
        column = self._column_spec(info.name)
        if column is not None and column.categories is not None:
            return list(column.categories)
        column_meta = self.metadata['tables'][self._table_name]['columns'].get(info.name, {})
        if column_meta.get('range_values'):
            return list(column_meta['range_values'])
        return None

    def _declared_values(self, info: ResolvedColumn) -> list | None:
        if info.derived is not None:
            return list(info.derived.values) if info.derived.values is not None else None
        column = self._column_spec(info.name)
        if column is not None and column.values is not None:
            return list(column.values)
        return None

    def _check_overlaps(self, statistic: StatisticSpec, base: list, result: _Checked) -> bool:
        positions = [p for p in range(len(statistic.columns))
                     if any(key[p][0] == 'i' for key in result.keys)]
        if not positions:
            return True
        messy = False
        for position in positions:
            intervals = sorted({key[position][1:] for key in result.keys})
            for (_low_a, high_a), (low_b, _high_b) in zip(intervals, intervals[1:]):
                if low_b < high_a:
                    messy = True
        if not messy:
            return True

        groups: dict[tuple, list[int]] = {}
        for index, key in enumerate(result.keys):
            rest = tuple(part for p, part in enumerate(key) if p not in positions)
            groups.setdefault(rest, []).append(index)

        cell_indices = result.cell_indices
        ok = True
        for members in groups.values():
            for a_pos, a in enumerate(members):
                for b in members[:a_pos]:
                    key_a, key_b = result.keys[a], result.keys[b]
                    if all(key_a[p][1] < key_b[p][2] and key_b[p][1] < key_a[p][2]
                           for p in positions):
                        position = next(p for p in positions if key_a[p] != key_b[p])
                        cell = statistic.cells[cell_indices[a]]
                        other = statistic.cells[cell_indices[b]]
                        self.add(base + ['cells', cell_indices[a], 'key', position],
                                 f'{_render(cell.key[position])} overlaps '
                                 f'{_render(other.key[position])} of cells[{cell_indices[b]}]: '
                                 'the cells of one statistic must not overlap.')
                        ok = False
        return ok

    def _check_sum(self, statistic: StatisticSpec, base: list, num_rows: int | None) -> bool:
        if any(cell.value < 0 for cell in statistic.cells):
            return False
        total = sum(float(cell.value) for cell in statistic.cells)
        if statistic.measure == 'proportion':
            allowed = max(SUM_SLACK, statistic.tolerance)
            if statistic.complete and abs(total - 1.0) > allowed + _EPS:
                self.add(base + ['cells'],
                         f'proportions sum to {total:.6g}, expected 1 (within {allowed:g}). '
                         'Fix the values, or set "complete": false if cells are missing.')
                return False
            if not statistic.complete and total > 1.0 + SUM_SLACK + _EPS:
                self.add(base + ['cells'],
                         f'proportions of a partial table sum to {total:.6g}, more than 1.')
                return False
        else:
            if statistic.complete and total <= 0:
                self.add(base + ['cells'], 'the counts sum to 0: a complete table needs a '
                                           'positive total.')
                return False
            if not statistic.complete and num_rows and total > num_rows * (1 + SUM_SLACK):
                self.add(base + ['cells'],
                         f'the counts of a partial table sum to {total:g}, more than the '
                         f"table's num_rows ({num_rows}).")
                return False
        return True

    # ------------------------------------------------------------------ consistency
    def _check_consistency(self, resolved, checked: list[_Checked]) -> None:
        usable = [c for c in checked
                  if c.columns_ok and c.keys_ok and c.statistic.complete and c.keys]
        marginals = [(i, c) for i, c in enumerate(usable) if len(c.statistic.columns) == 1]
        for check_index, check in enumerate(usable):
            for position, column in enumerate(check.statistic.columns):
                for marginal_index, marginal in marginals:
                    if marginal.statistic.columns[0] != column:
                        continue
                    if not check.statistic.is_joint and marginal_index >= check_index:
                        continue  # compare two marginals of one column once
                    self._compare_margins(check, position, marginal, resolved[column])

    def _compare_margins(self, joint: _Checked, position: int, marginal: _Checked,
                         info: ResolvedColumn) -> None:
        joint_parts = [key[position] for key in joint.keys]
        marginal_parts = [key[0] for key in marginal.keys]
        joint_total = sum(joint.shares)
        marginal_total = sum(marginal.shares)
        if joint_total <= 0 or marginal_total <= 0:
            return

        intervals = joint_parts[0][0] == 'i'
        if intervals != (marginal_parts[0][0] == 'i'):
            return
        if intervals:
            # The finest partition in which every interval of both statistics lies inside one
            # part: the end points that are not inside any interval of either.
            spans = {part[1:] for part in joint_parts} | {part[1:] for part in marginal_parts}
            common = sorted(b for b in {end for span in spans for end in span}
                            if not any(low < b < high for low, high in spans))

            def unit(part):
                index = bisect.bisect_right(common, part[1]) - 1
                return ('i', index)
        else:
            def unit(part):
                return part

        joint_margin: dict = {}
        for part, share in zip(joint_parts, joint.shares):
            joint_margin[unit(part)] = joint_margin.get(unit(part), 0.0) + share
        marginal_margin: dict = {}
        for part, share in zip(marginal_parts, marginal.shares):
            marginal_margin[unit(part)] = marginal_margin.get(unit(part), 0.0) + share

        allowed = max(joint.statistic.tolerance, marginal.statistic.tolerance) + CONSISTENCY_SLACK
        worst = None
        for key in set(joint_margin) | set(marginal_margin):
            difference = abs(joint_margin.get(key, 0.0) - marginal_margin.get(key, 0.0))
            if difference > allowed + _EPS and (worst is None or difference > worst[0]):
                worst = (difference, key)
        if worst is None:
            return

        difference, key = worst
        if intervals:
            index = key[1]
            low = _edge_label(info, common[index]) if 0 <= index < len(common) else '-inf'
            high = _edge_label(info, common[index + 1]) if index + 1 < len(common) else 'inf'
            where = f'[{low}, {high}]'
        else:
            where = _render(key[1])
        kind = 'joint' if joint.statistic.is_joint else 'marginal'
        self.add(joint.path,
                 f"{kind} '{joint.statistic.name}' is inconsistent with the marginal "
                 f"'{marginal.statistic.name}' ({json_path(marginal.path)}) on column "
                 f"'{info.name}': at {where} its margin is {joint_margin.get(key, 0.0):.4f} but "
                 f'the marginal is {marginal_margin.get(key, 0.0):.4f} (difference '
                 f'{difference:.4f}, allowed {allowed:g}: the larger tolerance + '
                 f'{CONSISTENCY_SLACK}).')

    # ------------------------------------------------------------------ rules
    def _check_rules(self, table_name: str, resolved: dict[str, ResolvedColumn]) -> None:
        table = self.spec.tables[table_name]
        names: dict[str, int] = {}
        for index, rule in enumerate(table.rules):
            path = ['tables', table_name, 'rules', index]
            if rule.name in names:
                self.add(path + ['name'], f"duplicate rule name '{rule.name}' (also "
                                          f'rules[{names[rule.name]}]).')
            else:
                names[rule.name] = index
            self._check_expression(path + ['expression'], rule.expression, list(resolved),
                                   f"table '{table_name}'")

    def _check_expression(self, path: list, text: str, known: list[str], where: str) -> None:
        from sdv_llmsynthor.spec.expressions import parse_expression

        try:
            expression = parse_expression(text)
        except ExpressionError as err:
            self.add(path, f'the expression does not parse: {err}')
            return
        for name in sorted(expression.columns):
            if name not in known:
                self.add(path, f"the expression names unknown column '{name}' of {where}."
                               f'{suggest(name, known)}')


def _render(part: Any) -> str:
    if isinstance(part, (tuple, list)):
        return '[' + ', '.join(_render(p) for p in part) + ']'
    if isinstance(part, bool):
        return 'true' if part else 'false'
    if isinstance(part, str):
        return repr(part)
    return f'{part:g}' if isinstance(part, float) else str(part)


def _render_key(key: Sequence[Any]) -> str:
    return '[' + ', '.join(_render(part) for part in key) + ']'


def _edge_label(info: ResolvedColumn, index: int) -> str:
    value = float(info.edges[index])
    if info.kind == 'datetime':
        return seconds_to_iso(value)
    return f'{value:g}'


def _edge_labels(info: ResolvedColumn) -> list[str]:
    return [_edge_label(info, index) for index in range(len(info.edges))]

