"""The macro-statistics spec as Python objects: loading, saving and round trips.

The JSON Schema (``macro-spec.schema.json``) is the single source of truth for the format;
this module turns a schema-valid document into typed objects and back. Checks that need more
than the schema (against SDV metadata, consistency between statistics, expressions) live in
``validation.py`` and run through :meth:`MacroSpec.validate`.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.geography import GeographySpec
from sdv_llmsynthor.spec.schema import schema_problems

SPEC_VERSION = '1.0'
GEOGRAPHY_SPEC_VERSION = '1.1'

KeyPart = Any  # str | float | int | bool | tuple[edge, edge]


def child_count_column(child_table: str) -> str:
    """Name of the implicit parent-table column holding the number of child rows.

    Args:
        child_table (str):
            The child table's name.

    Returns:
        str:
            ``'<child_table>__count'``. Statistics and rules of the parent table may use it.
    """
    return f'{child_table}__count'


def _key_part_from_json(part: Any) -> KeyPart:
    if isinstance(part, list):
        return (part[0], part[1])
    return part


def _key_part_to_json(part: KeyPart) -> Any:
    if isinstance(part, tuple):
        return [part[0], part[1]]
    return part


@dataclass
class Cell:
    """One cell of a frequency table.

    Args:
        key (tuple):
            One coordinate per column: a category, or a ``(low, high)`` interval.
        value (float):
            A count or a proportion, as the statistic's ``measure`` says.
    """

    key: tuple
    value: float


@dataclass
class StatisticSpec:
    """A marginal (one column) or joint (several columns) frequency table of one table.

    Args:
        name (str):
            Unique within its table.
        columns (tuple[str, ...]):
            The columns, in the order of each cell's key.
        cells (list[Cell]):
            The listed cells.
        measure (str):
            ``'proportion'`` or ``'count'``.
        complete (bool):
            Whether unlisted cells are zero (True) or unknown (False).
        weight (float):
            Relative importance.
        tolerance (float):
            Absolute share per cell within which the statistic is met.
        source (str or None):
            Provenance.
        description (str or None):
            Free text.
        implicit (bool):
            True for statistics made by the loader (a relationship's ``child_count``); they are
            not written back by :meth:`MacroSpec.to_dict`.
        level (str or None):
            Spec 1.1: the geography level whose zones ``zones`` gives counts for. The cells
            then hold the region totals (the sums over the zones), so code that reads a 1.0
            spec sees the whole region.
        zones (dict[str, list[float]] or None):
            Spec 1.1: zone id -> absolute counts aligned with the cells' keys.
    """

    name: str
    columns: tuple[str, ...]
    cells: list[Cell]
    measure: str = 'proportion'
    complete: bool = True
    weight: float = 1.0
    tolerance: float = 0.0
    source: str | None = None
    description: str | None = None
    implicit: bool = False
    level: str | None = None
    zones: dict[str, list[float]] | None = None

    @property
    def is_joint(self) -> bool:
        """bool: Whether the statistic spans two or more columns."""
        return len(self.columns) > 1

    def proportions(self, num_rows: int | None = None) -> dict[tuple, float]:
        """Target share of all rows for each listed cell.

        Counts of a complete table are divided by their sum (so a table from another source,
        with another total, still gives shares); counts of a partial table are divided by the
        table's ``num_rows``.

        Args:
            num_rows (int or None):
                The table's row count, needed for partial count tables.

        Returns:
            dict[tuple, float]:
                Share per cell key.
        """
        if self.measure == 'proportion':
            return {cell.key: float(cell.value) for cell in self.cells}

        if self.complete or not num_rows:
            total = sum(float(cell.value) for cell in self.cells)
        else:
            total = float(num_rows)

        if total <= 0:
            return {cell.key: 0.0 for cell in self.cells}

        return {cell.key: float(cell.value) / total for cell in self.cells}

    def _target_to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.level is not None:
            out['level'] = self.level
            out['keys'] = [[_key_part_to_json(part) for part in cell.key] for cell in self.cells]
            out['zones'] = {zone: list(values) for zone, values in (self.zones or {}).items()}
        else:
            if self.measure != 'proportion':
                out['measure'] = self.measure
            out['cells'] = [
                {'key': [_key_part_to_json(part) for part in cell.key], 'value': cell.value}
                for cell in self.cells
            ]
        if not self.complete:
            out['complete'] = False
        if self.weight != 1.0:
            out['weight'] = self.weight
        if self.tolerance:
            out['tolerance'] = self.tolerance
        if self.source is not None:
            out['source'] = self.source
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the statistic as it appears in a spec document."""
        out: dict[str, Any] = {'name': self.name, 'columns': list(self.columns)}
        if self.description is not None:
            out['description'] = self.description
        out.update(self._target_to_dict())
        return out

    @classmethod
    def _from_target(cls, name, columns, data, implicit=False):
        level = data.get('level')
        zones = None
        if level is not None:
            # Spec 1.1: one count vector per zone; the cells are the region totals.
            zones = {str(zone): list(values) for zone, values in data['zones'].items()}
            cells = []
            for position, key in enumerate(data['keys']):
                total = sum(values[position] for values in zones.values()
                            if position < len(values))
                cells.append(Cell(tuple(_key_part_from_json(part) for part in key), total))
        else:
            cells = [
                Cell(tuple(_key_part_from_json(part) for part in cell['key']), cell['value'])
                for cell in data['cells']
            ]
        return cls(
            name=name,
            columns=tuple(columns),
            cells=cells,
            level=level,
            zones=zones,
            measure='count' if level is not None else data.get('measure', 'proportion'),
            complete=data.get('complete', True),
            weight=float(data.get('weight', 1.0)),
            tolerance=float(data.get('tolerance', 0.0)),
            source=data.get('source'),
            description=data.get('description'),
            implicit=implicit,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatisticSpec:
        """Build a statistic from its spec-document form."""
        return cls._from_target(data['name'], data['columns'], data)


@dataclass
class ColumnSpec:
    """What the spec says about one column beyond its SDV sdtype.

    Args:
        name (str):
            Column name.
        description (str or None):
            Free text shown to the LLM.
        bins (list or None):
            Strictly increasing main bin edges (numbers, or ISO date strings).
        sub_bins (int):
            Uniform sub-bins per main bin.
        values (list or None):
            Discrete numeric support.
        categories (list or None):
            Every allowed category.
        missing_proportion (float):
            Share of rows where the column is missing.
    """

    name: str
    description: str | None = None
    bins: list | None = None
    sub_bins: int = 1
    values: list | None = None
    categories: list | None = None
    missing_proportion: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the column as it appears in a spec document."""
        out: dict[str, Any] = {}
        if self.description is not None:
            out['description'] = self.description
        if self.bins is not None:
            out['bins'] = list(self.bins)
            if self.sub_bins != 1:
                out['sub_bins'] = self.sub_bins
        if self.values is not None:
            out['values'] = list(self.values)
        if self.categories is not None:
            out['categories'] = list(self.categories)
        if self.missing_proportion:
            out['missing_proportion'] = self.missing_proportion
        return out

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ColumnSpec:
        """Build a column from its spec-document form."""
        return cls(
            name=name,
            description=data.get('description'),
            bins=list(data['bins']) if 'bins' in data else None,
            sub_bins=int(data.get('sub_bins', 1)),
            values=list(data['values']) if 'values' in data else None,
            categories=list(data['categories']) if 'categories' in data else None,
            missing_proportion=float(data.get('missing_proportion', 0.0)),
        )


@dataclass
class DerivedColumnSpec:
    """A parent-table column aggregated from child rows (count, any, all, min, max, sum, mean).

    Args:
        name (str):
            Column name in the parent table.
        child_table (str):
            The child table aggregated.
        function (str):
            ``count``, ``any``, ``all``, ``min``, ``max``, ``sum`` or ``mean``.
        column (str or None):
            The child column for ``min``/``max``/``sum``/``mean``.
        predicate (str or None):
            An expression over child columns (see the class description in the docs).
        bins (list or None):
            Bin edges when the result is binned.
        values (list or None):
            Discrete numeric support of the result.
        description (str or None):
            Free text.
        implicit (bool):
            True for the loader-made child-count column; not written back.
    """

    name: str
    child_table: str
    function: str
    column: str | None = None
    predicate: str | None = None
    bins: list | None = None
    values: list | None = None
    description: str | None = None
    implicit: bool = False

    @property
    def is_boolean(self) -> bool:
        """bool: Whether the result is True/False (``any`` and ``all``)."""
        return self.function in ('any', 'all')

    def to_dict(self) -> dict[str, Any]:
        """Return the derived column as it appears in a spec document."""
        out: dict[str, Any] = {'child_table': self.child_table, 'function': self.function}
        for name in ('column', 'predicate', 'bins', 'values', 'description'):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, list) else value
        return out

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> DerivedColumnSpec:
        """Build a derived column from its spec-document form."""
        return cls(
            name=name,
            child_table=data['child_table'],
            function=data['function'],
            column=data.get('column'),
            predicate=data.get('predicate'),
            bins=list(data['bins']) if 'bins' in data else None,
            values=list(data['values']) if 'values' in data else None,
            description=data.get('description'),
        )


@dataclass
class RuleSpec:
    """A validity rule: an expression that must hold for every row.

    Args:
        name (str):
            Name shown in rejection tables.
        expression (str):
            The expression text.
        description (str or None):
            Free text.
    """

    name: str
    expression: str
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as it appears in a spec document."""
        out = {'name': self.name, 'expression': self.expression}
        if self.description is not None:
            out['description'] = self.description
        return out


@dataclass
class ZoneTotalSpec:
    """Spec 1.1: a numeric control, one number per zone of a level.

    Args:
        name (str):
            Unique within the table.
        level (str):
            The geography level of ``zones``.
        function (str):
            ``'count'`` (the table's rows in the zone, e.g. persons), ``'sum'`` of ``column``,
            or ``'mean'`` of ``column`` over the zone's rows (the geography table only, whose
            rows per zone are fixed: it becomes ``sum = mean x households``).
        zones (dict[str, float]):
            Zone id -> the number.
        column (str or None):
            The numeric column (``sum`` and ``mean``).
        weight (float):
            Relative importance, as for statistics.
        source, description (str or None):
            Free text.
    """

    name: str
    level: str
    function: str
    zones: dict[str, float]
    column: str | None = None
    weight: float = 1.0
    source: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the control as it appears in a spec document."""
        out: dict[str, Any] = {'name': self.name, 'level': self.level,
                               'function': self.function}
        if self.column is not None:
            out['column'] = self.column
        if self.weight != 1.0:
            out['weight'] = self.weight
        for key in ('source', 'description'):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out['zones'] = dict(self.zones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoneTotalSpec:
        """Build the control from its spec-document form."""
        return cls(name=data['name'], level=data['level'], function=data['function'],
                   zones={str(zone): float(value) for zone, value in data['zones'].items()},
                   column=data.get('column'), weight=float(data.get('weight', 1.0)),
                   source=data.get('source'), description=data.get('description'))


@dataclass
class TableSpec:
    """Everything the spec says about one table.

    Args:
        name (str):
            Table name (as in the SDV metadata).
        num_rows (int or None):
            Number of rows the targets describe.
        context (str or None):
            Free text.
        columns (dict[str, ColumnSpec]):
            Per-column information.
        derived_columns (dict[str, DerivedColumnSpec]):
            Aggregations of child rows (parent tables only).
        statistics (list[StatisticSpec]):
            Marginal and joint frequency tables.
        rules (list[RuleSpec]):
            Validity rules.
        zone_totals (list[ZoneTotalSpec]):
            Spec 1.1 numeric controls per zone.
    """

    name: str
    num_rows: int | None = None
    context: str | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    derived_columns: dict[str, DerivedColumnSpec] = field(default_factory=dict)
    statistics: list[StatisticSpec] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    zone_totals: list[ZoneTotalSpec] = field(default_factory=list)

    def get_statistic(self, name: str) -> StatisticSpec:
        """Return the statistic called ``name``.

        Raises:
            KeyError: if there is none.
        """
        for statistic in self.statistics:
            if statistic.name == name:
                return statistic

        raise KeyError(f"Table '{self.name}' has no statistic named '{name}'.")

    def to_dict(self) -> dict[str, Any]:
        """Return the table as it appears in a spec document."""
        out: dict[str, Any] = {}
        if self.num_rows is not None:
            out['num_rows'] = self.num_rows
        if self.context is not None:
            out['context'] = self.context
        if self.columns:
            out['columns'] = {name: col.to_dict() for name, col in self.columns.items()}
        derived = {n: d.to_dict() for n, d in self.derived_columns.items() if not d.implicit}
        if derived:
            out['derived_columns'] = derived
        statistics = [s.to_dict() for s in self.statistics if not s.implicit]
        if statistics:
            out['statistics'] = statistics
        if self.rules:
            out['rules'] = [rule.to_dict() for rule in self.rules]
        if self.zone_totals:
            out['zone_totals'] = [total.to_dict() for total in self.zone_totals]
        return out


@dataclass
class RelationshipSpec:
    """A parent/child relationship (households and their persons).

    Args:
        parent_table (str):
            The parent table.
        child_table (str):
            The child table.
        parent_primary_key (str or None):
            Taken from the SDV metadata when omitted.
        child_foreign_key (str or None):
            Taken from the SDV metadata when omitted.
        child_count (StatisticSpec or None):
            Distribution of the number of children per parent, as a statistic of the parent
            table over :func:`child_count_column`.
    """

    parent_table: str
    child_table: str
    parent_primary_key: str | None = None
    child_foreign_key: str | None = None
    child_count: StatisticSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the relationship as it appears in a spec document."""
        out: dict[str, Any] = {'parent_table': self.parent_table, 'child_table': self.child_table}
        if self.parent_primary_key is not None:
            out['parent_primary_key'] = self.parent_primary_key
        if self.child_foreign_key is not None:
            out['child_foreign_key'] = self.child_foreign_key
        if self.child_count is not None:
            out['child_count'] = self.child_count._target_to_dict()
        return out


class MacroSpec:
    """A macro-statistics spec: what is known about a population, as aggregates.

    Build one with :meth:`load`, :meth:`from_dict`, :meth:`from_data` or
    :meth:`from_dayz_parameters`. The constructor takes already-parsed parts.

    Args:
        tables (dict[str, TableSpec]):
            Per-table specs.
        relationships (list[RelationshipSpec]):
            Parent/child relationships.
        name (str or None):
            Dataset name.
        context (str or None):
            Free text for the whole dataset.
        geography (GeographySpec or None):
            Spec 1.1: zones at several levels (see ``spec.geography``).
    """

    def __init__(self, tables, relationships=None, name=None, context=None, geography=None):
        self.tables: dict[str, TableSpec] = dict(tables)
        self.relationships: list[RelationshipSpec] = list(relationships or [])
        self.name: str | None = name
        self.context: str | None = context
        self.geography: GeographySpec | None = geography

    def __repr__(self):
        parts = []
        for table in self.tables.values():
            parts.append(f'{table.name}: {len(table.statistics)} statistics')
        return f'MacroSpec(name={self.name!r}, {"; ".join(parts)})'

    def __eq__(self, other):
        return isinstance(other, MacroSpec) and self.to_dict() == other.to_dict()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, spec_dict: dict[str, Any]) -> MacroSpec:
        """Build a spec from a decoded JSON document, checking it against the JSON Schema.

        Checks that need the SDV metadata run in :meth:`validate`.

        Args:
            spec_dict (dict):
                The document.

        Returns:
            MacroSpec

        Raises:
            SpecValidationError: listing every schema problem with its JSON path.
        """
        problems = schema_problems(spec_dict)
        if problems:
            raise SpecValidationError(problems)

        data = copy.deepcopy(spec_dict)
        tables = {}
        for table_name, table_data in data['tables'].items():
            tables[table_name] = TableSpec(
                name=table_name,
                num_rows=table_data.get('num_rows'),
                context=table_data.get('context'),
                columns={
                    name: ColumnSpec.from_dict(name, col)
                    for name, col in table_data.get('columns', {}).items()
                },
                derived_columns={
                    name: DerivedColumnSpec.from_dict(name, derived)
                    for name, derived in table_data.get('derived_columns', {}).items()
                },
                statistics=[StatisticSpec.from_dict(s) for s in table_data.get('statistics', [])],
                rules=[
                    RuleSpec(r['name'], r['expression'], r.get('description'))
                    for r in table_data.get('rules', [])
                ],
                zone_totals=[ZoneTotalSpec.from_dict(t)
                             for t in table_data.get('zone_totals', [])],
            )

        relationships = []
        for rel in data.get('relationships', []):
            child_count = None
            if 'child_count' in rel:
                column = child_count_column(rel['child_table'])
                child_count = StatisticSpec._from_target(
                    f'child_count:{rel["child_table"]}', (column,), rel['child_count'],
                    implicit=True,
                )
            relationships.append(RelationshipSpec(
                parent_table=rel['parent_table'],
                child_table=rel['child_table'],
                parent_primary_key=rel.get('parent_primary_key'),
                child_foreign_key=rel.get('child_foreign_key'),
                child_count=child_count,
            ))

        geography = None
        if 'geography' in data:
            geography = GeographySpec.from_dict(data['geography'])
            table = tables.get(geography.table)
            if table is not None and table.num_rows is None:
                table.num_rows = sum(int(v) for v in geography.totals['households'].values())
        spec = cls(tables, relationships, name=data.get('name'), context=data.get('context'),
                   geography=geography)
        spec._attach_child_counts()
        return spec

    def _attach_child_counts(self):
        """Expose each child-count distribution as a statistic of the parent table."""
        for rel in self.relationships:
            parent = self.tables.get(rel.parent_table)
            if parent is None:
                continue  # reported by validate()

            column = child_count_column(rel.child_table)
            if column not in parent.derived_columns:
                values = None
                if rel.child_count is not None:
                    keys = sorted({cell.key[0] for cell in rel.child_count.cells
                                   if isinstance(cell.key[0], (int, float))
                                   and not isinstance(cell.key[0], bool)})
                    values = keys or None
                parent.derived_columns[column] = DerivedColumnSpec(
                    name=column, child_table=rel.child_table, function='count',
                    values=values, implicit=True,
                    description=f'Number of {rel.child_table} rows of each {rel.parent_table} row.',
                )

            if rel.child_count is not None and rel.child_count not in parent.statistics:
                parent.statistics.append(rel.child_count)

    @classmethod
    def from_populationsim(cls, configs_dir: str | os.PathLike,
                           data_dir: str | os.PathLike) -> MacroSpec:
        """Read a PopulationSim configuration (``settings.yaml``, ``controls.csv``, data).

        The geography, household totals and controls become a spec 1.1 document; see
        :func:`sdv_llmsynthor.spec.populationsim.load_populationsim`, which also returns the
        seeds and their SDV metadata.

        Args:
            configs_dir (str or PathLike):
                The folder with ``settings.yaml``.
            data_dir (str or PathLike):
                The folder with the seeds, crosswalk and control tables.

        Returns:
            MacroSpec
        """
        from sdv_llmsynthor.spec.populationsim import load_populationsim

        return load_populationsim(configs_dir, data_dir).spec

    @classmethod
    def load(cls, path: str | os.PathLike) -> MacroSpec:
        """Read a spec from a JSON file.

        Args:
            path (str or PathLike):
                The file.

        Returns:
            MacroSpec

        Raises:
            SpecValidationError: if the file is not JSON or the spec is invalid.
        """
        try:
            with open(path, encoding='utf-8') as handle:
                spec_dict = json.load(handle)
        except json.JSONDecodeError as err:
            raise SpecValidationError([(
                '$', f'{os.fspath(path)} is not valid JSON: {err.msg} at line {err.lineno} '
                f'column {err.colno}',
            )]) from err

        return cls.from_dict(spec_dict)

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable document (what :meth:`save` writes).

        Returns:
            dict
        """
        leveled = any(table.zone_totals for table in self.tables.values()) or any(
            statistic.level is not None
            for table in self.tables.values() for statistic in table.statistics)
        version = GEOGRAPHY_SPEC_VERSION if self.geography is not None or leveled else SPEC_VERSION
        out: dict[str, Any] = {'spec_version': version}
        if self.name is not None:
            out['name'] = self.name
        if self.context is not None:
            out['context'] = self.context
        out['tables'] = {name: table.to_dict() for name, table in self.tables.items()}
        if self.relationships:
            out['relationships'] = [rel.to_dict() for rel in self.relationships]
        if self.geography is not None:
            out['geography'] = self.geography.to_dict()
        return _finite_json(out)

    def save(self, path: str | os.PathLike) -> None:
        """Write the spec as indented JSON.

        Args:
            path (str or PathLike):
                The file to write.
        """
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(self.to_dict(), handle, indent=2, ensure_ascii=False)
            handle.write('\n')

    # ------------------------------------------------------------------ helpers
    def get_table(self, name: str) -> TableSpec:
        """Return the table called ``name``.

        Raises:
            KeyError: with the known table names.
        """
        if name not in self.tables:
            raise KeyError(
                f"The spec has no table '{name}'. Tables: {', '.join(sorted(self.tables))}."
            )
        return self.tables[name]

    def get_relationship(self, child_table: str) -> RelationshipSpec | None:
        """Return the relationship whose child is ``child_table``, if any."""
        for rel in self.relationships:
            if rel.child_table == child_table:
                return rel
        return None

    def validate(self, metadata) -> None:
        """Check the spec against SDV metadata and for internal consistency.

        Every problem is collected before raising. See ``sdv_llmsynthor.spec.validation``.

        Args:
            metadata (sdv.metadata.Metadata):
                The SDV metadata the synthetic data must follow.

        Raises:
            SpecValidationError: listing every problem with its JSON path.
        """
        from sdv_llmsynthor.spec.validation import validate_spec

        validate_spec(self, metadata)

    @classmethod
    def from_data(cls, data, metadata, **kwargs) -> MacroSpec:
        """Derive a spec from real rows, as the paper does. See ``spec.derive.derive_spec``."""
        from sdv_llmsynthor.spec.derive import derive_spec

        return derive_spec(data, metadata, **kwargs)

    @classmethod
    def from_dayz_parameters(cls, params, metadata) -> MacroSpec:
        """Load SDV DayZ parameters as a spec. See ``spec.dayz.spec_from_dayz_parameters``."""
        from sdv_llmsynthor.spec.dayz import spec_from_dayz_parameters

        return spec_from_dayz_parameters(params, metadata)


def _finite_json(value):
    """Make floats JSON-safe and plain (numpy scalars to Python, no NaN)."""
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(item) for item in value]
    if hasattr(value, 'item') and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'The spec cannot hold the non-finite number {value}.')
    return value
