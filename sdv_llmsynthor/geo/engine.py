"""Synthesise households and persons for every zone of a spec 1.1 geography.

The engine works on a *library* of candidate households with their persons: a seed sample
(PUMS-like rows with weights) or records the synthesizers made. Every library household is
encoded once into its contribution to every cell of every leveled statistic (persons counted
per household), and households that contribute identically are grouped into *types*.

Stage 1, per lowest zone: select exactly the zone's household total of types
(:func:`~sdv_llmsynthor.core.calibration.calibrate_pool`, duplicates allowed) against the
zone's own controls plus a quota of every upper-level control, proportional to the zone's
share of the upper zone's households. Stage 2, bottom-up per upper zone: one swap refinement
over the selections of all its lowest zones, against every control inside it (its own, its
descendants' and every lowest zone's household total, weighted so that no swap between two
zones can pay off). Household totals are met exactly by construction; every other control is
met as far as the library allows, and the report says per zone and cell by how much.

A type's count in a zone goes to its library households in proportion to their seed weights
(largest remainder), so columns that no control names keep their seed distribution.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sdv_llmsynthor.core.aggregate import build_contributions
from sdv_llmsynthor.core.calibration import _SwapRefiner, calibrate_pool, calibration_lower_bound
from sdv_llmsynthor.core.encoding import CompiledStatistic, compile_table
from sdv_llmsynthor.core.loop import _largest_remainder
from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.geography import ZoneTree, canonical_zone
from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.resolve import metadata_relationships, primary_key
from sdv_llmsynthor.spec.validation import validate_spec

__all__ = ['PopulationResult', 'synthesize_population']

LOGGER = logging.getLogger(__name__)

SEED_ID_COLUMN = 'seed_household_id'
#: The ``error_scale`` choices of :func:`synthesize_population` (the first is the default).
ERROR_SCALES = ('rmse', 'relative', 'level', 'absolute')
# Relative weights are divided by (zones at the control's level) ** this.
_LEVEL_POWER = {'relative': 0.0, 'rmse': 0.5, 'level': 1.0}


@dataclass
class _Control:
    """One leveled statistic, compiled, with its zone targets aligned to the matrix columns."""

    statistic: CompiledStatistic
    level: str
    offset: int  # first matrix column; the rest cell is at offset + num_cells
    targets: np.ndarray  # (zones of the level, num_cells + 1)
    weights: np.ndarray  # (num_cells + 1,) per count
    cell_names: list[str]

    @property
    def width(self) -> int:
        return self.statistic.num_cells + 1


@dataclass
class PopulationResult:
    """What :func:`synthesize_population` returns.

    Args:
        tables (dict[str, pandas.DataFrame]):
            The synthetic households (with every level's zone column and the library household
            they copy, ``seed_household_id``) and their persons.
        report (pandas.DataFrame):
            One row per statistic, zone and cell of its level: ``target``, ``result``,
            ``difference``; plus every control summed at every level above its own
            (``aggregated=True``).
        seconds (dict[str, float]):
            Wall time of the stages.
        dropped (dict[str, int]):
            Library rows left out and why.
        borrowed (int):
            Synthetic households copied from a seed household of another seed zone.
        bounds (pandas.DataFrame or None):
            With ``lower_bounds=True``: per lowest zone, the weighted error of its own
            controls (``objective``) and a lower bound no selection of its households from
            the library can beat (``lower_bound``, from the linear relaxation's dual; see
            :func:`zone_bounds`). ``lower_bound > 0``: the zone's controls cannot all hold
            with this library, whatever the method.
    """

    tables: dict[str, pd.DataFrame]
    report: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    borrowed: int = 0
    bounds: pd.DataFrame | None = None

    def summary(self) -> pd.DataFrame:
        """Per statistic and level: zones, RMSE, %RMSE and the share of cells met exactly.

        %RMSE is ``100 * RMSE / mean(target)`` over the zones' cells, PopulationSim's
        validation figure.
        """
        rows = []
        for (name, level, aggregated), group in self.report.groupby(
                ['statistic', 'level', 'aggregated'], sort=False):
            rmse = float(np.sqrt(np.mean(group['difference'] ** 2)))
            mean_target = float(group['target'].mean())
            rows.append({
                'statistic': name, 'level': level, 'aggregated': bool(aggregated),
                'zones': int(group['zone'].nunique()), 'cells': len(group),
                'rmse': rmse,
                'pct_rmse': 100 * rmse / mean_target if mean_target > 0 else float('nan'),
                'max_abs_difference': float(group['difference'].abs().max()),
                'share_met': float((group['difference'] == 0).mean()),
            })
        return pd.DataFrame(rows)


def _relationship(spec: MacroSpec, metadata: Any, parent: str):
    for rel in spec.relationships:
        if rel.parent_table == parent:
            child = rel.child_table
            break
    else:
        child = None
        for rel in metadata_relationships(metadata):
            if rel['parent_table_name'] == parent:
                child = rel['child_table_name']
                break
    if child is None:
        return None, None, None
    foreign_key = None
    for rel in metadata_relationships(metadata):
        if rel['parent_table_name'] == parent and rel['child_table_name'] == child:
            foreign_key = rel['child_foreign_key']
    return child, foreign_key, primary_key(metadata, parent)


def _cell_positions(statistic_spec, compiled: CompiledStatistic) -> np.ndarray:
    """Per spec key, the compiled cell it counts in (-1 for a key no value can match)."""
    index = {tuple(key): position for position, key in enumerate(compiled.cell_keys)}
    return np.asarray([index.get(tuple(cell.key), -1) for cell in statistic_spec.cells],
                      dtype=np.int64)


class _Library:
    """The candidate households, their contributions, types and seed zones."""

    def __init__(self, spec, metadata, households, persons, weight_column, seed_column):
        geography = spec.geography
        self.parent = geography.table
        self.child, self.foreign_key, self.key = _relationship(spec, metadata, self.parent)
        self.child_key = None if self.child is None else primary_key(metadata, self.child)
        self.dropped: dict[str, int] = {}
        households = households.reset_index(drop=True)
        if weight_column is not None and weight_column not in households.columns:
            raise ValueError(f"The households have no weight column '{weight_column}'; "
                             f"their columns: {', '.join(map(str, households.columns))}.")
        if weight_column is not None:
            weights = pd.to_numeric(households[weight_column], errors='coerce').to_numpy(float)
            keep = np.isfinite(weights) & (weights > 0)
            if not keep.all():
                self.dropped['households without a positive weight'] = int((~keep).sum())
                households = households[keep].reset_index(drop=True)
                weights = weights[keep]
        else:
            weights = np.ones(len(households))
        if len(households) == 0:
            raise ValueError('The library is empty: give seed households (with positive '
                             'weights) or records to build the population from.')
        self.households = households
        self.weights = weights
        self.persons = None
        member_units = np.zeros(0, dtype=np.int64)
        if self.child is not None and persons is not None:
            if self.key is None or self.foreign_key is None:
                raise ValueError(f"The metadata has no key linking '{self.child}' to "
                                 f"'{self.parent}'.")
            units = pd.Index(households[self.key]).get_indexer(persons[self.foreign_key])
            orphans = units < 0
            if orphans.any():
                self.dropped[f'{self.child} without a household'] = int(orphans.sum())
            self.persons = persons[~orphans].reset_index(drop=True)
            member_units = units[~orphans].astype(np.int64)
        self.member_units = member_units

        encodings = {self.parent: compile_table(spec, metadata, self.parent)}
        if self.child is not None:
            encodings[self.child] = compile_table(spec, metadata, self.child)
        self.encodings = encodings
        blocks = []
        self.controls: list[tuple[Any, CompiledStatistic, str]] = []
        for table_name, encoding in encodings.items():
            frame = households if table_name == self.parent else self.persons
            if frame is None:
                continue
            units = (np.arange(len(households), dtype=np.int64) if table_name == self.parent
                     else member_units)
            table_spec = spec.tables[table_name]
            by_name = {statistic.name: statistic for statistic in table_spec.statistics}
            codes = encoding.encode(frame)
            for compiled in encoding.statistics:
                statistic_spec = by_name.get(compiled.name)
                if statistic_spec is None or statistic_spec.level is None:
                    continue
                blocks.append((compiled, compiled.cell_index(codes), units))
                self.controls.append((statistic_spec, compiled, table_name))
        leveled = [statistic.name for table in spec.tables.values()
                   for statistic in table.statistics if statistic.level is not None]
        compiled_names = {statistic_spec.name for statistic_spec, _, _ in self.controls}
        self.uncompiled = [name for name in leveled if name not in compiled_names]
        matrix, offsets = build_contributions(blocks, len(households))
        self.offsets = [offset for _, offset in offsets]
        dense = matrix.toarray()
        # Numeric controls: one column each, the household's value (its persons' sum).
        self.numeric: list[tuple[Any, str, int]] = []
        numeric_columns = []
        for table_name in encodings:
            frame = households if table_name == self.parent else self.persons
            if frame is None:
                continue
            for total in spec.tables[table_name].zone_totals:
                if total.function == 'count':
                    values = np.ones(len(frame))
                else:
                    values = pd.to_numeric(frame[total.column], errors='coerce').to_numpy(
                        dtype=float)
                    values = np.where(np.isfinite(values), values, 0.0)
                if table_name != self.parent:
                    values = np.bincount(member_units, weights=values,
                                         minlength=len(households))
                self.numeric.append((total, table_name, dense.shape[1] + len(numeric_columns)))
                numeric_columns.append(values)
        if numeric_columns:
            dense = np.hstack([dense, np.stack(numeric_columns, axis=1)])
        uniques, of_unit = np.unique(dense, axis=0, return_inverse=True)
        self.type_matrix = sp.csr_matrix(uniques)
        self.of_unit = of_unit.ravel().astype(np.int64)
        self.num_cells = dense.shape[1]

        self.seed_zone = None
        if seed_column is not None and seed_column in households.columns:
            self.seed_zone = np.asarray([canonical_zone(v) for v in households[seed_column]],
                                        dtype=object)

    def local_types(self, seed_zone: str | None) -> np.ndarray:
        """Types present among the seeds of ``seed_zone`` (every type when it has none)."""
        cache = self.__dict__.setdefault('_local_cache', {})
        if seed_zone not in cache:
            types = None
            if self.seed_zone is not None and seed_zone is not None:
                members = self.seed_zone == seed_zone
                if members.any():
                    types = np.unique(self.of_unit[members])
            if types is None:
                types = np.arange(self.type_matrix.shape[0], dtype=np.int64)
            cache[seed_zone] = types
        return cache[seed_zone]

    def candidate_types(self, seed_zone: str | None, borrow: bool = False) -> np.ndarray:
        """The seed zone's types, then (``borrow``) every other type of the library."""
        local = self.local_types(seed_zone)
        if not borrow or local.size == self.type_matrix.shape[0]:
            return local
        others = np.setdiff1d(np.arange(self.type_matrix.shape[0], dtype=np.int64), local)
        return np.concatenate([local, others])

    def zone_matrix(self, seed_zone: str | None, types: np.ndarray) -> sp.csr_matrix:
        """Contributions of ``types`` plus a last column: 1 for a type borrowed from another
        seed zone (priced by the borrowing penalty)."""
        borrowed = ~np.isin(types, self.local_types(seed_zone))
        column = sp.csr_matrix(borrowed.astype(float)[:, None])
        matrix = sp.hstack([self.type_matrix[types], column], format='csr')
        matrix.sort_indices()
        return matrix

    def members(self, type_index: int, seed_zone: str | None) -> np.ndarray:
        """Library households of a type, those of ``seed_zone`` when it has any."""
        of_type = self.of_unit == type_index
        if self.seed_zone is not None and seed_zone is not None:
            local = of_type & (self.seed_zone == seed_zone)
            if local.any():
                return np.flatnonzero(local)
        return np.flatnonzero(of_type)


@dataclass
class _NumericStatistic:
    """What the report and the controls need of a numeric control (one column)."""

    name: str
    table: str
    weight: float
    num_cells: int = 0
    complete: bool = True


def _numeric_controls(library: _Library, tree: ZoneTree, households_at: dict,
                      relative: bool, level_power: float) -> list[_Control]:
    controls = []
    for total, table_name, offset in library.numeric:
        level = total.level
        zone_index = tree.index(level)
        targets = np.zeros((len(tree.zones[level]), 1))
        for zone, value in total.zones.items():
            row = zone_index[canonical_zone(zone) or zone]
            # A mean over the zone's households is a sum over its (fixed) households.
            targets[row, 0] = float(value) * (households_at[level][row]
                                              if total.function == 'mean' else 1.0)
        weights = np.full(1, float(total.weight))
        if relative:
            weights = (weights / max(float(targets.mean()), 1.0)
                       / targets.shape[0] ** level_power)
        label = f'{total.function}({total.column})' if total.column else 'count(rows)'
        controls.append(_Control(_NumericStatistic(total.name, table_name, total.weight),
                                 level, offset, targets, weights, [label]))
    return controls


def _build_controls(library: _Library, tree: ZoneTree, relative: bool,
                    level_power: float = 0.0, households_at: dict | None = None
                    ) -> list[_Control]:
    controls = []
    for (statistic_spec, compiled, _), offset in zip(library.controls, library.offsets):
        level = statistic_spec.level
        zone_index = tree.index(level)
        positions = _cell_positions(statistic_spec, compiled)
        targets = np.zeros((len(tree.zones[level]), compiled.num_cells + 1))
        for zone, values in (statistic_spec.zones or {}).items():
            row = zone_index[canonical_zone(zone) or zone]
            for position, value in zip(positions, values):
                if position >= 0:
                    targets[row, position] += float(value)
        weights = np.full(compiled.num_cells + 1, float(compiled.weight))
        if relative:
            # An error of one count weighs weight / (the cell's mean target over the
            # level's zones): errors are compared in shares, as %RMSE compares them.
            scale = targets.mean(axis=0)
            scale[-1] = targets.sum(axis=1).mean()
            # Divided by (zones at the level) ** level_power: 1/2 makes a weight the %RMSE
            # that one count of error adds at an otherwise exact level; 1 the mean share.
            weights = weights / np.maximum(scale, 1.0) / targets.shape[0] ** level_power
        if not compiled.complete:
            weights[-1] = 0.0  # rows in no listed cell are free in a partial control
        names = [compiled.describe_cell(cell) for cell in range(compiled.num_cells)]
        controls.append(_Control(compiled, level, offset, targets, weights,
                                 names + ['(rest)']))
    if library.numeric:
        controls += _numeric_controls(library, tree, households_at, relative, level_power)
    return controls


def _stage_one_targets(controls, tree, totals, households_at, zone, penalty=0.0):
    """Targets and weights of every matrix column for one lowest zone."""
    num_cells = controls[-1].offset + controls[-1].width if controls else 0
    targets = np.zeros(num_cells + 1)  # the last cell counts borrowed households (target 0)
    weights = np.zeros(num_cells + 1)
    for control in controls:
        upper = tree.ancestors[control.level][zone]
        share = 1.0
        if control.level != tree.lowest:
            share = totals[zone] / max(households_at[control.level][upper], 1)
        span = slice(control.offset, control.offset + control.width)
        targets[span] = control.targets[upper] * share
        weights[span] = control.weights
    weights[-1] = penalty
    return targets, weights


def _refine_upper(library, controls, tree, totals, counts, candidates, level, upper,
                  max_swaps_per_household, seed_zones=None, penalty=0.0):
    """Swap refinement of every lowest zone's selection inside one upper zone, in place."""
    level_position = tree.levels.index(level)
    inside = np.flatnonzero(tree.ancestors[level] == upper)
    if inside.size < 2 and not any(c.level == level for c in controls):
        return 0
    blocks = []  # (row start, columns) per control block and zone
    column_parts, row_parts, value_parts = [], [], []
    row_zone = np.concatenate([np.full(candidates[z].size, k) for k, z in enumerate(inside)])
    row_type = np.concatenate([candidates[z] for z in inside])
    types = library.type_matrix[row_type].tocoo()
    base = 0
    targets_parts, weights_parts = [], []
    for control in controls:
        if tree.levels.index(control.level) < level_position:
            continue  # an ancestor's control: handled when its zone is refined
        zones_here = tree.ancestors[control.level][inside]
        local_zones, local_of_row = np.unique(zones_here, return_inverse=True)
        local_of_row = local_of_row.ravel()
        in_block = (types.col >= control.offset) & (types.col < control.offset + control.width)
        rows = types.row[in_block]
        row_parts.append(rows)
        column_parts.append(base + local_of_row[row_zone[rows]] * control.width
                            + types.col[in_block] - control.offset)
        value_parts.append(types.data[in_block])
        targets_parts.append(control.targets[local_zones].ravel())
        weights_parts.append(np.tile(control.weights, local_zones.size))
        base += local_zones.size * control.width
        blocks.append(control)
    if not blocks:
        return 0
    # One shared cell counts households borrowed from other seed zones (target 0).
    borrowed = np.concatenate([
        ~np.isin(candidates[z], library.local_types(None if seed_zones is None
                                                    else seed_zones[z]))
        for z in inside])
    rows = np.flatnonzero(borrowed)
    row_parts.append(rows)
    column_parts.append(np.full(rows.size, base))
    value_parts.append(np.ones(rows.size))
    targets_parts.append(np.zeros(1))
    weights_parts.append(np.full(1, penalty))
    base += 1
    cell_weights = np.concatenate(weights_parts)
    single = sp.csr_matrix((np.concatenate(value_parts),
                            (np.concatenate(row_parts), np.concatenate(column_parts))),
                           shape=(row_type.size, base))
    # One zone-total column per lowest zone: heavier than anything a unit can change
    # elsewhere, so a swap between two zones never pays off and totals stay exact.
    heavy = 1.0 + 2.0 * float(np.max(single @ cell_weights)) if single.nnz else 1.0
    total_columns = sp.csr_matrix((np.ones(row_type.size), (np.arange(row_type.size),
                                                             row_zone)),
                                  shape=(row_type.size, inside.size))
    matrix = sp.hstack([single, total_columns], format='csr')
    matrix.sort_indices()
    targets = np.concatenate(targets_parts + [totals[inside].astype(float)])
    weights = np.concatenate([cell_weights, np.full(inside.size, heavy)])
    start = np.concatenate([counts[z] for z in inside]).astype(np.int64)
    refiner = _SwapRefiner(matrix, targets, weights, np.zeros(targets.size), start, None)
    refiner.run(None, max_swaps_per_household * int(totals[inside].sum()) + 2000)
    refined = refiner.counts
    position = 0
    for z in inside:
        size = candidates[z].size
        counts[z] = refined[position:position + size].copy()
        position += size
    return refiner.swaps


def _expand(library, tree, zone_counts, candidates, seed_zones):
    """Library household positions and lowest-zone position of every synthetic household."""
    households, zones = [], []
    for z in sorted(zone_counts):
        counts = zone_counts[z]
        for type_index, count in zip(candidates[z].tolist(), counts.tolist()):
            if count <= 0:
                continue
            members = library.members(type_index, seed_zones[z])
            base = _largest_remainder(library.weights[members], int(count))
            households.append(np.repeat(members, base))
            zones.append(np.full(int(base.sum()), z, dtype=np.int64))
    if not households:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(households), np.concatenate(zones)


def _report(controls, tree, library, chosen, zone_of):
    """Target and result of every control at its level and summed at the levels above."""
    contributions = library.type_matrix[library.of_unit[chosen]]
    rows = []
    for control in controls:
        span = slice(control.offset, control.offset + control.width)
        block = contributions[:, span].toarray()
        own_position = tree.levels.index(control.level)
        for level in tree.levels[:own_position + 1]:
            num_zones = len(tree.zones[level])
            of_household = tree.ancestors[level][zone_of]
            result = np.zeros((num_zones, control.width))
            np.add.at(result, of_household, block)
            if level == control.level:
                target = control.targets
            else:
                # Sum the control's zones up to this level.
                target = np.zeros((num_zones, control.width))
                own_zones = np.arange(len(tree.zones[control.level]))
                upper_of = np.zeros(len(own_zones), dtype=np.int64)
                upper_of[tree.ancestors[control.level]] = tree.ancestors[level]
                np.add.at(target, upper_of, control.targets)
            cells = range(control.width) if control.statistic.complete else range(
                control.width - 1)
            for zone_position, zone in enumerate(tree.zones[level]):
                for cell in cells:
                    rows.append((control.statistic.name, control.statistic.table, level,
                                 level != control.level, zone, control.cell_names[cell],
                                 target[zone_position, cell], result[zone_position, cell]))
    report = pd.DataFrame(rows, columns=['statistic', 'table', 'level', 'aggregated', 'zone',
                                         'cell', 'target', 'result'])
    report['difference'] = report['result'] - report['target']
    return report


def _size_distribution(spec: MacroSpec, child: str) -> dict[int, float] | None:
    """Households per number of children, from a complete statistic over the size column.

    The size column is the one a rule ``X == <child>__count`` ties to the children; a bin
    of sizes spreads its count evenly over the integers it holds.
    """
    import re

    parent = spec.tables[spec.geography.table]
    for rule in parent.rules:
        match = re.fullmatch(rf'\s*(\w+)\s*==\s*{re.escape(child)}__count\s*', rule.expression)
        if match is None:
            continue
        column = match.group(1)
        for statistic in parent.statistics:
            if statistic.columns != (column,) or not statistic.complete:
                continue
            sizes: dict[int, float] = {}
            for cell in statistic.cells:
                part = cell.key[0]
                if isinstance(part, tuple):
                    values = np.arange(np.ceil(float(part[0])),
                                       np.floor(float(part[1]) - 1e-9) + 1).astype(int)
                else:
                    values = np.asarray([int(part)])
                for value in values.tolist() or [int(float(part[0]))]:
                    sizes[value] = sizes.get(value, 0.0) + float(cell.value) / max(len(values), 1)
            return sizes
    return None


def _region_spec(spec: MacroSpec, child: str | None) -> MacroSpec:
    """The spec as a region-level 1.0 synthesizer needs it: children per household, totals."""
    if child is None or child not in spec.tables:
        return spec
    sizes = _size_distribution(spec, child)
    document = spec.to_dict()
    if spec.tables[child].num_rows is None:
        total = None
        for statistic in spec.tables[child].statistics:
            if statistic.level is not None and statistic.complete:
                total = sum(float(cell.value) for cell in statistic.cells)
                break
        if total is None and sizes is not None:
            total = sum(size * count for size, count in sizes.items())
        if total:
            document['tables'][child]['num_rows'] = int(round(total))
    for relationship in document.get('relationships', []):
        if relationship['child_table'] == child and 'child_count' not in relationship \
                and sizes is not None:
            relationship['child_count'] = {
                'measure': 'count',
                'cells': [{'key': [size], 'value': count} for size, count in sorted(
                    sizes.items()) if count > 0]}
    return MacroSpec.from_dict(document)


def region_library(spec: MacroSpec, metadata: Any, num_households: int | None = None,
                   planner: Any = 'statistical', llm: Any = None, seed: int = 0,
                   verbose: bool = False) -> dict[str, pd.DataFrame]:
    """Households with persons made from the spec alone, to serve as the library.

    Without a seed sample, the leveled statistics summed to the region (their ``cells``) are
    what a 1.0 spec would say; :class:`~sdv_llmsynthor.LLMSynthorMultiTableSynthesizer`
    synthesises records that match them (the planner and LLM as for any spec), and the
    engine then picks from those records per zone.

    Args:
        spec (MacroSpec):
            A spec 1.1 with a geography.
        metadata (sdv.metadata.Metadata or dict):
            The households and persons metadata.
        num_households (int or None):
            Library size. Defaults to ``max(5_000, 2 * the largest zone)``: candidates, which
            the zones may pick more than once.
        planner, llm:
            As for the multi-table synthesizer (default: the statistical planner, no LLM).
        seed (int):
            Seed.
        verbose (bool):
            Show the synthesizer's progress bar.

    Returns:
        dict[str, pandas.DataFrame]: the library tables by name.
    """
    from sdv.metadata import Metadata

    from sdv_llmsynthor.synthesizers.multi_table import LLMSynthorMultiTableSynthesizer

    child, _, _ = _relationship(spec, metadata, spec.geography.table)
    spec = _region_spec(spec, child)
    totals = spec.geography.household_totals
    if num_households is None:
        num_households = max(5_000, 2 * max(totals.values(), default=0))
    if isinstance(metadata, dict):
        metadata = Metadata.load_from_dict(metadata)
    synthesizer = LLMSynthorMultiTableSynthesizer(
        metadata, spec=spec, planner=planner, llm=llm, num_rows=int(num_households),
        seed=seed, verbose=verbose)
    synthesizer.fit()
    return synthesizer.sample(scale=1.0)


def synthesize_population(
    spec: MacroSpec | dict,
    metadata: Any,
    households: pd.DataFrame | None = None,
    persons: pd.DataFrame | None = None,
    weight_column: str | None = None,
    seed: int = 0,
    max_swaps_per_household: int = 20,
    error_scale: str = 'rmse',
    planner: Any = 'statistical',
    llm: Any = None,
    borrow: bool | float = True,
    sweeps: int = 3,
    lower_bounds: bool = False,
    verbose: bool = False,
) -> PopulationResult:
    """Synthesise every zone of a spec 1.1 geography from a library of households.

    Args:
        spec (MacroSpec or dict):
            A spec with a ``geography`` and leveled statistics (validated first).
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata of the households and persons tables.
        households (pandas.DataFrame or None):
            The library: seed households (e.g. PUMS), with the seed level's zone column when
            the geography has a ``seed_level``. ``None``: the library is synthesised from the
            spec's region totals (:func:`region_library`, with ``planner`` and ``llm``), then
            every household of it is a candidate in every zone.
        persons (pandas.DataFrame or None):
            The persons of the library households (joined by the metadata's foreign key).
        weight_column (str or None):
            The households' seed weight. Households without a positive weight are dropped
            (counted in ``dropped``). ``None``: every household weighs 1.
        seed (int):
            Seed of the random parts; the result is deterministic for a seed.
        max_swaps_per_household (int):
            Work cap of the refinements, in swaps per synthetic household.
        error_scale (str):
            How a count of error is weighed where controls conflict. ``'rmse'`` (the
            default): the statistic's weight divided by the cell's mean target over its
            level's zones and by the square root of the number of those zones, which is what
            one count adds to the control's %RMSE at its level (PopulationSim's validation
            figure) when the rest of the level is exact; upper levels, with few zones, weigh
            more per count than tracts. ``'relative'``: without the square root, so errors
            are alike in percent within each zone whatever the level (upper-level person
            controls lose to tract cells). ``'level'``: divided by the number of zones
            instead, so every control's mean share error counts alike (favours upper levels
            most, at a cost in household composition). ``'absolute'``: every count weighs
            the statistic's weight. evaluation/results/populations_error_scales.md compares
            them.
        planner, llm:
            Who writes the library when no seed is given (see :func:`region_library`).
        borrow (bool or float):
            Let a zone use households of other seed zones when its own seeds cannot fit its
            controls (the zero-cell problem), at a price per borrowed household in counts of
            the cheapest cell of the lowest level's controls (of any level when the lowest has
            none): ``True`` is 1, a number sets it (higher: fewer borrowed households, looser
            fit). ``False`` or 0: seed zones only, as PopulationSim does.
        sweeps (int):
            Rounds of zone-by-zone re-solving against the upper-level residuals (block
            coordinate descent; each round can only lower the objective).
        lower_bounds (bool):
            Also bound, per lowest zone, the error its own controls must keep with this
            library (``bounds`` of the result; one linear relaxation per zone: 18 s for
            PSRC's 756 tracts, 0.5 s for example_test's 36 TAZs).
        verbose (bool):
            Show progress bars (zones, rounds) on stderr.

    Returns:
        PopulationResult
    """
    problem = prepare_problem(spec, metadata, households, persons, weight_column, seed,
                              max_swaps_per_household, error_scale, planner, llm, borrow,
                              sweeps)
    started = time.perf_counter()
    candidates, zone_counts = solve_zones(problem, problem.controls,
                                          np.arange(problem.totals.size), problem.tree.levels[0],
                                          verbose)
    problem.seconds['zones'] = time.perf_counter() - started
    chosen, zone_of = _expand(problem.library, problem.tree, zone_counts, candidates,
                              problem.seed_zones)
    tables = _output_tables(problem.library, problem.tree, chosen, zone_of)
    report = _report(problem.controls, problem.tree, problem.library, chosen, zone_of)
    bounds = None
    if lower_bounds:
        started = time.perf_counter()
        bounds = zone_bounds(problem, candidates, zone_counts)
        problem.seconds['bounds'] = time.perf_counter() - started
    return PopulationResult(tables, report, dict(problem.seconds), dict(problem.library.dropped),
                            borrowed_households(problem, chosen, zone_of), bounds)


def zone_bounds(problem: Problem, candidates: dict, zone_counts: dict,
                iterations: int = 500) -> pd.DataFrame:
    """Per lowest zone: the weighted error of its own controls, and a bound below it.

    The bound is the dual value of the zone's linear relaxation (its own controls, its
    household total, every candidate household type, copies allowed) at the prices the
    relaxation's solver reaches in ``iterations``: by weak duality no selection, not even a
    fractional one, scores below it. A positive bound proves the zone's controls inconsistent
    with the library; ``objective - lower_bound`` bounds what a better search could still gain
    there. Upper-level controls and the borrowing price are left out of both numbers.

    Returns:
        pandas.DataFrame:
            Columns ``zone``, ``households``, ``objective``, ``lower_bound``.
    """
    library, tree, totals = problem.library, problem.tree, problem.totals
    last = problem.controls[-1] if problem.controls else None
    width = last.offset + last.width + 1 if last is not None else 1  # + the borrowed cell
    targets = np.zeros((totals.size, width))
    weights = np.zeros(width)
    for control in problem.controls:
        if control.level == tree.lowest:
            span = slice(control.offset, control.offset + control.width)
            targets[:, span] = control.targets
            weights[span] = control.weights
    rows = []
    for z, zone in enumerate(tree.lowest_zones):
        objective = bound = 0.0
        if totals[z] > 0 and z in candidates and weights.any():
            matrix = library.zone_matrix(problem.seed_zones[z], candidates[z])
            result = np.asarray(matrix.T @ zone_counts[z], dtype=float).ravel()
            objective = float((weights * np.abs(targets[z] - result)).sum())
            bound = calibration_lower_bound(matrix, targets[z], weights, int(totals[z]),
                                            allow_duplicates=True, iterations=iterations)
        rows.append((zone, int(totals[z]), objective, bound))
    return pd.DataFrame(rows, columns=['zone', 'households', 'objective', 'lower_bound'])


def borrowed_households(problem, chosen, zone_of) -> int:
    """How many synthetic households copy a seed household of another seed zone."""
    seed_zone = problem.library.seed_zone
    if seed_zone is None or not len(chosen):
        return 0
    own = np.asarray(problem.seed_zones, dtype=object)[zone_of]
    return int((seed_zone[chosen] != own).sum())


@dataclass
class Problem:
    """Everything the zones' synthesis needs, prepared once (and shipped to workers once).

    Args:
        library: The encoded candidate households.
        controls (list): Leveled statistics with their zone targets and weights.
        tree (ZoneTree): The zone hierarchy.
        totals (numpy.ndarray): Households per lowest zone.
        seed_zones (list): Per lowest zone, its seed zone id (or None).
        seed (int): Seed of the random parts.
        max_swaps_per_household (int): Work cap of the refinements.
        spec_hash (str): Identifies the spec, library and settings (for checkpoints).
        seconds (dict): Wall time of the preparation.
    """

    library: Any
    controls: list
    tree: ZoneTree
    totals: np.ndarray
    seed_zones: list
    seed: int
    max_swaps_per_household: int
    spec_hash: str
    seconds: dict = field(default_factory=dict)
    sweeps: int = 3
    borrow_penalty: float = 0.0


def prepare_problem(spec, metadata, households=None, persons=None, weight_column=None, seed=0,
                    max_swaps_per_household=20, error_scale='rmse', planner='statistical',
                    llm=None, borrow=True, sweeps=3) -> Problem:
    """Validate the spec, encode the library and compile every zone's targets.

    Arguments as for :func:`synthesize_population`.

    Returns:
        Problem
    """
    import hashlib
    import json

    if isinstance(spec, dict):
        spec = MacroSpec.from_dict(spec)
    validate_spec(spec, metadata)
    if spec.geography is None:
        raise SpecValidationError([('$.geography', 'synthesize_population needs a spec 1.1 '
                                                   'geography (levels, crosswalk, totals).')])
    if error_scale not in ERROR_SCALES:
        raise ValueError(f"error_scale must be one of {', '.join(map(repr, ERROR_SCALES))}, "
                         f'not {error_scale!r}.')
    started = time.perf_counter()
    geography = spec.geography
    tree = geography.tree()
    seed_level = geography.seed_level
    if households is None:
        tables = region_library(spec, metadata, planner=planner, llm=llm, seed=seed)
        child, _, _ = _relationship(spec, metadata, geography.table)
        households, persons = tables[geography.table], tables.get(child)
        weight_column, seed_level = None, None
    library = _Library(spec, metadata, households, persons, weight_column, seed_level)
    if library.uncompiled:
        LOGGER.warning('Statistics %s name columns the engine cannot encode; left out.',
                       ', '.join(library.uncompiled))
    household_totals = geography.household_totals
    totals = np.asarray([household_totals[zone] for zone in tree.lowest_zones], dtype=np.int64)
    households_at = {level: np.bincount(tree.ancestors[level], weights=totals,
                                        minlength=len(tree.zones[level]))
                     for level in tree.levels}
    controls = _build_controls(library, tree, error_scale != 'absolute',
                               _LEVEL_POWER.get(error_scale, 0.0), households_at)
    seed_zones = [None] * len(totals)
    if seed_level is not None and library.seed_zone is not None:
        seed_ids = np.asarray(tree.zones[seed_level], dtype=object)
        seed_zones = list(seed_ids[tree.ancestors[seed_level]])
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode())
    for array in (library.type_matrix.toarray(), library.of_unit, library.weights):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(pd.util.hash_pandas_object(library.households, index=False).to_numpy()
                  .tobytes())
    penalty = 0.0
    price = 1.0 if borrow is True else float(borrow or 0.0)
    if price < 0:
        raise ValueError(f'borrow must be True, False or a price >= 0, not {borrow!r}.')
    if price > 0 and library.seed_zone is not None:
        # A household from another seed zone costs `price` counts of the lowest level's
        # cheapest cell: borrowed only where the zone's own seeds cannot fit its controls as
        # well. (The cheapest cell of any level, a county count, made borrowing nearly free:
        # 88% of PSRC's households were borrowed, against 39% now.)
        lowest = [c.weights for c in controls if c.level == tree.lowest]
        every = np.concatenate(lowest or [c.weights for c in controls] or [np.ones(1)])
        positive = every[every > 0]
        penalty = price * float(positive.min()) if positive.size else 0.0
    digest.update(json.dumps([seed, max_swaps_per_household, error_scale, penalty,
                              sweeps]).encode())
    return Problem(library, controls, tree, totals, seed_zones, int(seed),
                   int(max_swaps_per_household), digest.hexdigest()[:16],
                   {'library': time.perf_counter() - started}, int(sweeps), penalty)


def quota_controls(problem: Problem, level: str) -> list:
    """The controls with every control above ``level`` split into integer quotas at ``level``.

    A zone's target above ``level`` is divided among its ``level`` zones in proportion to their
    households, by largest remainder per cell, so the quotas add up to the target exactly and
    subtrees of ``level`` can be synthesised independently (in shards).
    """
    tree = problem.tree
    position = tree.levels.index(level)
    households_at = np.bincount(tree.ancestors[level], weights=problem.totals,
                                minlength=len(tree.zones[level]))
    out = []
    for control in problem.controls:
        if tree.levels.index(control.level) >= position:
            out.append(control)
            continue
        parent_of = np.zeros(len(tree.zones[level]), dtype=np.int64)
        parent_of[tree.ancestors[level]] = tree.ancestors[control.level]
        quotas = np.zeros((len(tree.zones[level]), control.width))
        for upper in range(len(tree.zones[control.level])):
            children = np.flatnonzero(parent_of == upper)
            if children.size == 0:
                continue
            shares = households_at[children]
            for cell in range(control.width):
                target = control.targets[upper, cell]
                if float(target).is_integer():
                    quotas[children, cell] = _largest_remainder(shares, int(target))
                else:
                    quotas[children, cell] = target * shares / max(shares.sum(), 1e-300)
        out.append(_Control(control.statistic, level, control.offset, quotas,
                            control.weights, control.cell_names))
    return out


def _zone_sweeps(problem, controls, candidates, zone_counts, lowest, sweeps, verbose=False):
    """Block coordinate descent over the lowest zones, in place.

    Each step solves one zone again from scratch (relaxation, rounding, swaps) against its own
    controls and, for every upper control, the upper target minus what the other zones
    already contribute: exactly the whole objective with the other zones held fixed. The
    new selection is kept only when it lowers that objective, so every sweep can only
    improve. A zone solve finds combined changes (two swaps that only together keep the
    zone's own cells) that pairwise swaps across zones cannot.
    """
    if sweeps <= 0 or not controls:
        return
    library, tree, totals = problem.library, problem.tree, problem.totals
    upper = [c for c in controls if c.level != tree.lowest]
    if not upper:
        return
    width = controls[-1].offset + controls[-1].width + 1  # + the borrowed-household cell
    matrices = {z: library.zone_matrix(problem.seed_zones[z], candidates[z]) for z in lowest}
    contributions = {z: np.asarray(matrices[z].T @ zone_counts[z], dtype=float).ravel()
                     for z in lowest}
    sums = []
    for control in upper:
        span = slice(control.offset, control.offset + control.width)
        total = np.zeros((len(tree.zones[control.level]), control.width))
        for z in lowest:
            total[tree.ancestors[control.level][z]] += contributions[z][span]
        sums.append(total)

    def block(z):
        targets = np.zeros(width)
        weights = np.zeros(width)
        weights[-1] = problem.borrow_penalty
        for control in controls:
            span = slice(control.offset, control.offset + control.width)
            weights[span] = control.weights
            if control.level == tree.lowest:
                targets[span] = control.targets[z]
        for control, total in zip(upper, sums):
            span = slice(control.offset, control.offset + control.width)
            g = tree.ancestors[control.level][z]
            targets[span] = control.targets[g] - (total[g] - contributions[z][span])
        return targets, weights

    for sweep in range(sweeps):
        improved = 0
        zones = lowest
        if verbose:
            from tqdm.auto import tqdm

            zones = tqdm(lowest, desc=f'upper levels, round {sweep + 1}', unit='zone',
                         leave=False)
        for z in zones:
            if totals[z] == 0:
                continue
            targets, weights = block(z)
            matrix = matrices[z]
            current = float((weights * np.abs(targets - contributions[z])).sum())
            result = calibrate_pool(
                matrix, np.maximum(targets, 0.0), weights, int(totals[z]),
                seed=np.random.default_rng([problem.seed, z, sweep + 1]),
                allow_duplicates=True, max_seconds=None,
                max_swaps=problem.max_swaps_per_household * int(totals[z]) + 2000)
            fresh = np.bincount(result.indices, minlength=candidates[z].size).astype(np.int64)
            # Also swaps from the current selection (never worse than it); keep the better.
            refiner = _SwapRefiner(matrix, targets, weights, np.zeros(width),
                                   zone_counts[z].copy(), None)
            refiner.run(None, problem.max_swaps_per_household * int(totals[z]) + 2000)
            best = None
            for counts in (fresh, refiner.counts):
                contribution = np.asarray(matrix.T @ counts, dtype=float).ravel()
                objective = float((weights * np.abs(targets - contribution)).sum())
                if best is None or objective < best[0]:
                    best = (objective, counts, contribution)
            objective, counts, contribution = best
            if objective < current - 1e-12:
                for control, total in zip(upper, sums):
                    span = slice(control.offset, control.offset + control.width)
                    total[tree.ancestors[control.level][z]] += (contribution[span]
                                                                - contributions[z][span])
                contributions[z] = contribution
                zone_counts[z] = counts
                improved += 1
        if improved == 0:
            break


def solve_zones(problem: Problem, controls: list, lowest: np.ndarray, top_level: str,
                verbose: bool = False):
    """Stage 1 for the given lowest zones, then Stage 2 for every zone of ``top_level`` and
    below whose lowest zones are all among them.

    Returns:
        tuple[dict, dict]:
            Per lowest zone position: its candidate types and the count of each.
    """
    library, tree, totals = problem.library, problem.tree, problem.totals
    households_at = {level: np.bincount(tree.ancestors[level], weights=totals,
                                        minlength=len(tree.zones[level]))
                     for level in tree.levels}
    candidates: dict[int, np.ndarray] = {}
    zone_counts: dict[int, np.ndarray] = {}
    zones = np.asarray(lowest).tolist()
    if verbose:
        from tqdm.auto import tqdm

        zones = tqdm(zones, desc='zones', unit='zone', leave=False)
    for z in zones:
        total = int(totals[z])
        types = library.candidate_types(problem.seed_zones[z], problem.borrow_penalty > 0)
        candidates[z] = types
        if total == 0:
            zone_counts[z] = np.zeros(types.size, dtype=np.int64)
            continue
        targets, weights = _stage_one_targets(controls, tree, totals, households_at, z,
                                              problem.borrow_penalty)
        matrix = library.zone_matrix(problem.seed_zones[z], types)
        result = calibrate_pool(matrix, targets, weights, total,
                                seed=np.random.default_rng([problem.seed, z]),
                                allow_duplicates=True, max_seconds=None,
                                max_swaps=problem.max_swaps_per_household * total + 2000)
        zone_counts[z] = np.bincount(result.indices, minlength=types.size).astype(np.int64)
    _zone_sweeps(problem, controls, candidates, zone_counts, np.asarray(lowest).tolist(),
                 problem.sweeps, verbose)
    inside = np.zeros(totals.size, dtype=bool)
    inside[np.asarray(lowest, dtype=np.int64)] = True
    top = tree.levels.index(top_level)
    for level in reversed(tree.levels[top:-1]):
        covered = np.bincount(tree.ancestors[level], weights=inside,
                              minlength=len(tree.zones[level]))
        sizes = np.bincount(tree.ancestors[level], minlength=len(tree.zones[level]))
        for upper in np.flatnonzero((covered == sizes) & (sizes > 0)).tolist():
            _refine_upper(library, controls, tree, totals, zone_counts, candidates, level,
                          upper, problem.max_swaps_per_household, problem.seed_zones,
                          problem.borrow_penalty)
    return candidates, zone_counts


def _output_tables(library, tree, chosen, zone_of):
    """The synthetic households (new keys, every level's zone) and copies of their persons."""
    parent = library.households.iloc[chosen].reset_index(drop=True)
    key = library.key
    new_ids = np.arange(1, len(chosen) + 1, dtype=np.int64)
    if key is not None:
        parent.insert(0, SEED_ID_COLUMN, parent[key].to_numpy())
        parent[key] = new_ids
    for level, values in tree.zone_columns(zone_of).items():
        parent[level] = values
    tables = {library.parent: parent}
    if library.persons is not None:
        order = np.argsort(library.member_units, kind='stable')
        sorted_units = library.member_units[order]
        starts = np.searchsorted(sorted_units, chosen, side='left')
        stops = np.searchsorted(sorted_units, chosen, side='right')
        sizes = stops - starts
        positions = order[np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])
                          ] if sizes.sum() else np.zeros(0, dtype=np.int64)
        child = library.persons.iloc[positions].reset_index(drop=True)
        child[library.foreign_key] = np.repeat(new_ids, sizes)
        # Zone columns the seed persons carry (their seed PUMA) become the household's zones.
        for level, values in tree.zone_columns(zone_of).items():
            if level in child.columns:
                child[level] = np.repeat(values, sizes)
        child_key = library.child_key
        if child_key is not None and child_key in child.columns:
            child[child_key] = np.arange(1, len(child) + 1, dtype=np.int64)
        tables[library.child] = child
    return tables

