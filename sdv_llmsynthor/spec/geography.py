"""Spec 1.1 geography: zones at several levels, a crosswalk, household totals per zone.

A geography names its levels top to bottom (``['DISTRICT', 'PUMA', 'TRACT', 'TAZ']``); the
crosswalk has one row per lowest-level zone giving its id at every level. Zone ids are compared
in a canonical text form, so ``100`` and ``"100"`` are the same zone. Statistics of spec 1.1
may carry a ``level`` and give one target vector per zone of that level (``zones``); their
``cells`` are then the region totals, so everything that reads a 1.0 spec sees the region.

:func:`geography_problems` collects every inconsistency (a zone with two parents, controls for
unknown zones, complete tables that do not add up to the zone's households) with its JSON path;
:class:`ZoneTree` is the checked hierarchy the population engine works on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ['GeographySpec', 'ZoneTree', 'canonical_zone', 'geography_problems']

_MAX_LISTED = 3


def canonical_zone(value: Any) -> str | None:
    """Return the canonical text of a zone id, or None when ``value`` cannot be one.

    Integers (and floats with an integral value, as pandas reads integer columns with gaps)
    become their decimal text; strings are stripped. Booleans, fractions, NaN and empty strings
    are not zone ids.

    Args:
        value (Any):
            A zone id as found in a spec or a CSV file.

    Returns:
        str or None
    """
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    return None


@dataclass
class GeographySpec:
    """The geography of a spec 1.1 document.

    Args:
        table (str):
            The table whose rows live in zones (households).
        levels (list[str]):
            Level names, top to bottom; the last is the lowest (output) level.
        crosswalk_columns (list[str]):
            The crosswalk's columns (one per level, in any order).
        rows (list[list]):
            One row per lowest-level zone, aligned with ``crosswalk_columns``.
        totals (dict[str, dict[str, int]]):
            ``{'households': {zone: count}}`` per lowest-level zone: a hard constraint.
        seed_level (str or None):
            The level at which seed records are located.
    """

    table: str
    levels: list[str]
    crosswalk_columns: list[str]
    rows: list[list]
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    seed_level: str | None = None

    @property
    def lowest(self) -> str:
        """str: The lowest (output) level."""
        return self.levels[-1]

    @property
    def household_totals(self) -> dict[str, int]:
        """dict[str, int]: Rows of the geography table per lowest-level zone (canonical ids)."""
        return {canonical_zone(zone) or zone: int(count)
                for zone, count in self.totals.get('households', {}).items()}

    def to_dict(self) -> dict[str, Any]:
        """Return the geography as it appears in a spec document."""
        out: dict[str, Any] = {
            'table': self.table,
            'levels': list(self.levels),
            'crosswalk': {'columns': list(self.crosswalk_columns),
                          'rows': [list(row) for row in self.rows]},
            'totals': {kind: dict(values) for kind, values in self.totals.items()},
        }
        if self.seed_level is not None:
            out['seed_level'] = self.seed_level
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeographySpec:
        """Build a geography from its spec-document form."""
        return cls(
            table=data['table'],
            levels=list(data['levels']),
            crosswalk_columns=list(data['crosswalk']['columns']),
            rows=[list(row) for row in data['crosswalk']['rows']],
            totals={kind: dict(values) for kind, values in data['totals'].items()},
            seed_level=data.get('seed_level'),
        )

    def tree(self) -> ZoneTree:
        """Return the zone hierarchy. Call only on a validated geography."""
        return ZoneTree.from_geography(self)


@dataclass
class ZoneTree:
    """A checked zone hierarchy, with every lowest zone's ancestor at every level.

    Args:
        levels (list[str]):
            Level names, top to bottom.
        zones (dict[str, list[str]]):
            Per level, its zone ids (canonical) in first-seen crosswalk order.
        ancestors (dict[str, numpy.ndarray]):
            Per level, the index (into ``zones[level]``) of every lowest zone's zone at that
            level; for the lowest level, ``arange``.
    """

    levels: list[str]
    zones: dict[str, list[str]]
    ancestors: dict[str, np.ndarray]

    @property
    def lowest(self) -> str:
        """str: The lowest level."""
        return self.levels[-1]

    @property
    def lowest_zones(self) -> list[str]:
        """list[str]: The lowest-level zone ids."""
        return self.zones[self.lowest]

    def index(self, level: str) -> dict[str, int]:
        """Return ``{zone id: position}`` for one level."""
        return {zone: position for position, zone in enumerate(self.zones[level])}

    def children(self, level: str, zone: str) -> np.ndarray:
        """Return the positions of the lowest zones inside ``zone`` of ``level``."""
        position = self.index(level)[zone]
        return np.flatnonzero(self.ancestors[level] == position)

    def zone_columns(self, lowest_positions: np.ndarray) -> dict[str, np.ndarray]:
        """Return every level's zone id for lowest zones given by position."""
        return {level: np.asarray(self.zones[level], dtype=object)[
            self.ancestors[level][lowest_positions]] for level in self.levels}

    @classmethod
    def from_geography(cls, geography: GeographySpec) -> ZoneTree:
        """Build the tree of a valid geography."""
        position = {name: i for i, name in enumerate(geography.crosswalk_columns)}
        zones: dict[str, list[str]] = {level: [] for level in geography.levels}
        seen: dict[str, dict[str, int]] = {level: {} for level in geography.levels}
        ancestors: dict[str, list[int]] = {level: [] for level in geography.levels}
        for row in geography.rows:
            for level in geography.levels:
                zone = canonical_zone(row[position[level]])
                if zone not in seen[level]:
                    seen[level][zone] = len(zones[level])
                    zones[level].append(zone)
                ancestors[level].append(seen[level][zone])
        return cls(list(geography.levels), zones,
                   {level: np.asarray(values, dtype=np.int64)
                    for level, values in ancestors.items()})


def _more(items: Sequence[str]) -> str:
    shown = ', '.join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f' and {len(items) - _MAX_LISTED} more'
    return shown


class _GeographyChecker:
    """Collects the problems of a spec's geography and of its leveled statistics."""

    def __init__(self, spec: Any, add: Callable[[list, str], None]):
        self.spec = spec
        self.add = add
        self.geography: GeographySpec | None = spec.geography
        self.zone_sets: dict[str, set[str]] = {}
        # Lowest zones of every zone of every level (only when the hierarchy is sound).
        self.households_in: dict[str, dict[str, int]] | None = None

    def run(self) -> None:
        geography = self.geography
        if geography is None:
            for table_name, table in self.spec.tables.items():
                for index, statistic in enumerate(self._explicit(table)):
                    if statistic.level is not None:
                        self.add(['tables', table_name, 'statistics', index, 'level'],
                                 'a statistic with a level needs a geography: add '
                                 '"geography" (spec_version "1.1") or give cells for the '
                                 'whole region.')
            self._check_zone_totals(False)
            return
        base = ['geography']
        if geography.table not in self.spec.tables:
            self.add(base + ['table'], f"unknown table '{geography.table}': the spec has "
                                       f"{', '.join(sorted(self.spec.tables))}.")
        levels_ok = self._check_levels(base)
        if levels_ok:
            sound = self._check_crosswalk(base)
            self._check_totals(base, sound)
        self._check_statistics(levels_ok)
        self._check_zone_totals(levels_ok)

    @staticmethod
    def _explicit(table):
        return [statistic for statistic in table.statistics if not statistic.implicit]

    def _check_levels(self, base: list) -> bool:
        geography = self.geography
        ok = True
        seen: dict[str, int] = {}
        for index, level in enumerate(geography.levels):
            if level in seen:
                self.add(base + ['levels', index],
                         f"duplicate level '{level}' (also levels[{seen[level]}]).")
                ok = False
            seen.setdefault(level, index)
        columns = geography.crosswalk_columns
        missing = [level for level in geography.levels if level not in columns]
        extra = [column for column in columns if column not in seen]
        if missing or extra or len(set(columns)) != len(columns):
            parts = []
            if missing:
                parts.append('no column for level ' + ', '.join(f"'{m}'" for m in missing))
            if extra:
                parts.append(', '.join(f"'{e}'" for e in extra) + ' not a level (levels: '
                             + ', '.join(geography.levels) + ')')
            if len(set(columns)) != len(columns):
                parts.append('a column is listed twice')
            self.add(base + ['crosswalk', 'columns'], '; '.join(parts) + '.')
            ok = False
        if geography.seed_level is not None and geography.seed_level not in seen:
            self.add(base + ['seed_level'], f"unknown level '{geography.seed_level}'; "
                                            f"levels: {', '.join(geography.levels)}.")
        return ok

    def _check_crosswalk(self, base: list) -> bool:
        geography = self.geography
        columns = geography.crosswalk_columns
        position = {name: i for i, name in enumerate(columns)}
        levels = geography.levels
        lowest = levels[-1]
        lowest_rows: dict[str, int] = {}
        parent_of: dict[str, dict[str, tuple[str, int]]] = {level: {} for level in levels}
        sound = True
        self.zone_sets = {level: set() for level in levels}
        for row_index, row in enumerate(geography.rows):
            path = base + ['crosswalk', 'rows', row_index]
            if len(row) != len(columns):
                self.add(path, f'{len(row)} values, expected {len(columns)} (one per column: '
                               f"{', '.join(columns)}).")
                sound = False
                continue
            ids = {}
            for level in levels:
                zone = canonical_zone(row[position[level]])
                if zone is None:
                    self.add(path + [position[level]],
                             f'{row[position[level]]!r} is not a zone id: use a string or an '
                             'integer.')
                    sound = False
                ids[level] = zone
            if any(zone is None for zone in ids.values()):
                continue
            for level in levels:
                self.zone_sets[level].add(ids[level])
            if ids[lowest] in lowest_rows:
                self.add(path + [position[lowest]],
                         f"{lowest} '{ids[lowest]}' listed twice (also rows"
                         f'[{lowest_rows[ids[lowest]]}]).')
                sound = False
                continue
            lowest_rows[ids[lowest]] = row_index
            for upper, lower in zip(levels, levels[1:]):
                zone, parent = ids[lower], ids[upper]
                known = parent_of[lower].get(zone)
                if known is None:
                    parent_of[lower][zone] = (parent, row_index)
                elif known[0] != parent:
                    self.add(path + [position[lower]],
                             f"{lower} '{zone}' has two parents: {upper} '{parent}' here, "
                             f"{upper} '{known[0]}' at rows[{known[1]}].")
                    sound = False
        return sound

    def _check_totals(self, base: list, sound: bool) -> None:
        geography = self.geography
        lowest = geography.lowest
        totals = geography.totals.get('households', {})
        path = base + ['totals', 'households']
        given: dict[str, int] = {}
        for raw, count in totals.items():
            zone = canonical_zone(raw)
            if zone not in self.zone_sets[lowest]:
                self.add(path + [raw], f"unknown {lowest} '{raw}'; the crosswalk has "
                                       f'{len(self.zone_sets[lowest])} {lowest} zones.')
                continue
            given[zone] = int(count)
        if not sound:
            return
        tree = ZoneTree.from_geography(geography)
        missing = [zone for zone in tree.lowest_zones if zone not in given]
        if missing:
            self.add(path, f'no household total for {lowest} ' + _more(
                [f"'{zone}'" for zone in missing]) + ': every crosswalk zone needs one (0 for '
                'an empty zone).')
            return
        lowest_totals = np.asarray([given[zone] for zone in tree.lowest_zones], dtype=np.int64)
        self.households_in = {}
        for level in geography.levels:
            sums = np.bincount(tree.ancestors[level], weights=lowest_totals,
                               minlength=len(tree.zones[level]))
            self.households_in[level] = {zone: int(total)
                                         for zone, total in zip(tree.zones[level], sums)}
        table = self.spec.tables.get(geography.table)
        total = int(lowest_totals.sum())
        if table is not None and table.num_rows is not None and table.num_rows != total:
            self.add(['tables', geography.table, 'num_rows'],
                     f'{table.num_rows} rows, but the zones of the geography hold {total} '
                     'households ($.geography.totals.households).')

    def _descendant_tables(self) -> set[str]:
        tables = {self.geography.table}
        changed = True
        while changed:
            changed = False
            for rel in self.spec.relationships:
                if rel.parent_table in tables and rel.child_table not in tables:
                    tables.add(rel.child_table)
                    changed = True
        return tables

    def _check_statistics(self, levels_ok: bool) -> None:
        geography = self.geography
        inside = self._descendant_tables()
        for table_name, table in self.spec.tables.items():
            for index, statistic in enumerate(self._explicit(table)):
                if statistic.level is None:
                    continue
                base = ['tables', table_name, 'statistics', index]
                if table_name not in inside:
                    self.add(base + ['level'],
                             f"'{table_name}' is not '{geography.table}' or one of its "
                             'descendants: its rows have no zone.')
                    continue
                if statistic.level not in geography.levels:
                    self.add(base + ['level'], f"unknown level '{statistic.level}'; levels: "
                                               f"{', '.join(geography.levels)}.")
                    continue
                if statistic.measure != 'count':
                    self.add(base + ['measure'], 'a statistic per zone gives counts: drop '
                                                 '"measure" or set it to "count".')
                if levels_ok:
                    self._check_zones(table_name, statistic, base)

    def _check_zone_totals(self, levels_ok: bool) -> None:
        geography = self.geography
        inside = self._descendant_tables() if geography is not None else set()
        for table_name, table in self.spec.tables.items():
            for index, total in enumerate(table.zone_totals):
                base = ['tables', table_name, 'zone_totals', index]
                if geography is None:
                    self.add(base + ['level'], 'a numeric control per zone needs a geography '
                                               '(spec_version "1.1").')
                    continue
                if table_name not in inside:
                    self.add(base + ['level'],
                             f"'{table_name}' is not '{geography.table}' or one of its "
                             'descendants: its rows have no zone.')
                    continue
                if total.level not in geography.levels:
                    self.add(base + ['level'], f"unknown level '{total.level}'; levels: "
                                               f"{', '.join(geography.levels)}.")
                    continue
                if total.function == 'mean' and table_name != geography.table:
                    self.add(base + ['function'],
                             f"a mean is only a linear target where the zone's rows are "
                             f"fixed: the geography table '{geography.table}'. Give the sum "
                             'instead.')
                if total.function == 'count' and total.column is not None:
                    self.add(base + ['column'], 'a count has no column.')
                columns = self.spec.tables[table_name].columns
                if total.column is not None and total.column in columns and (
                        columns[total.column].values is None
                        and columns[total.column].bins is None
                        and columns[total.column].categories is not None):
                    self.add(base + ['column'], f"'{total.column}' is categorical; sums and "
                                                'means need a numeric column.')
                if not levels_ok:
                    continue
                known = self.zone_sets.get(total.level, set())
                given = set()
                for raw in total.zones:
                    zone = canonical_zone(raw)
                    if zone not in known:
                        self.add(base + ['zones', raw], f"controls for unknown {total.level} "
                                                        f"'{raw}'; the crosswalk has "
                                                        f'{len(known)} {total.level} zones.')
                    given.add(zone)
                missing = sorted(known - given, key=lambda z: (len(z), z))
                if missing:
                    self.add(base + ['zones'], f'no targets for {total.level} ' + _more(
                        [f"'{zone}'" for zone in missing]) + ': give zeros or drop the zones.')

    def _check_zones(self, table_name: str, statistic: Any, base: list) -> None:
        level = statistic.level
        known = self.zone_sets.get(level, set())
        num_keys = len(statistic.cells)
        given = set()
        households = (self.households_in or {}).get(level)
        for raw, values in statistic.zones.items():
            path = base + ['zones', raw]
            zone = canonical_zone(raw)
            if zone not in known:
                self.add(path, f"controls for unknown {level} '{raw}'; the crosswalk has "
                               f'{len(known)} {level} zones.')
                continue
            given.add(zone)
            if len(values) != num_keys:
                self.add(path, f'{len(values)} values, expected {num_keys} (one per key).')
                continue
            if (statistic.complete and households is not None
                    and table_name == self.geography.table):
                total = sum(float(v) for v in values)
                if abs(total - households[zone]) > 1e-6 * max(1.0, households[zone]):
                    self.add(path, f'the complete table sums to {total:g} but {level} '
                                   f"'{zone}' has {households[zone]} households "
                                   '($.geography.totals.households).')
        missing = sorted(known - given, key=lambda z: (len(z), z))
        if missing:
            self.add(base + ['zones'], f'no targets for {level} ' + _more(
                [f"'{zone}'" for zone in missing]) + ': give zeros or drop the zones.')


def geography_problems(spec: Any, add: Callable[[list, str], None]) -> None:
    """Report every problem of ``spec.geography`` and of the leveled statistics through ``add``.

    Args:
        spec (MacroSpec):
            The spec.
        add (callable):
            ``add(path_parts, message)``, as the spec validator's.
    """
    _GeographyChecker(spec, add).run()
