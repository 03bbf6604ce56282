"""Read a PopulationSim configuration as a spec 1.1 document, and write its outputs.

PopulationSim (ActivitySim's population synthesizer) describes a run with a ``configs``
folder (``settings.yaml``, ``controls.csv``) and a ``data`` folder (seed households and persons,
a geography crosswalk, one control table per geography). :func:`load_populationsim` turns
that into a :class:`PopulationSimProject`: the spec (geography, one leveled statistic per
control column, PopulationSim's ``importance`` as weight), SDV metadata for the seeds, and the
seed tables, which the population engine uses as its library.

Control expressions are parsed (never evaluated by Python): comparisons of one seed column
with numbers (``households.NP >= 4``), joined by ``&`` on the same column, become keys of a
statistic over that column; anything else (``|``, ``~``, ``isin``, several columns) becomes a
0/1 indicator column computed on the seeds, with a partial statistic over it.
"""

from __future__ import annotations

import ast
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.geography import canonical_zone
from sdv_llmsynthor.spec.model import MacroSpec

__all__ = ['PopulationSimProject', 'load_populationsim', 'write_populationsim_outputs']

LOGGER = logging.getLogger(__name__)

_OPERATORS = {ast.Eq: '==', ast.GtE: '>=', ast.Gt: '>', ast.LtE: '<=', ast.Lt: '<',
              ast.NotEq: '!='}
_FLIPPED = {'==': '==', '!=': '!=', '>=': '<=', '>': '<', '<=': '>=', '<': '>'}
_INDICATOR_PREFIX = 'ctl__'


@dataclass
class PopulationSimProject:
    """A PopulationSim configuration read as a spec with its seeds.

    Args:
        spec (MacroSpec):
            Spec 1.1: the geography (crosswalk rows with lowest-level controls only),
            household totals from ``total_hh_control``, one statistic per control column.
        metadata (dict):
            SDV metadata (``METADATA_SPEC_VERSION`` V1) of the seed households and persons.
        households (pandas.DataFrame):
            Seed households in seed zones, with a positive weight.
        persons (pandas.DataFrame):
            Their persons.
        weight_column (str):
            The seed weight (``household_weight_col``).
        settings (dict):
            ``settings.yaml`` as read.
        dropped (dict[str, int]):
            What was left out, as PopulationSim does, and how much.
        configs_dir, data_dir (pathlib.Path or None):
            The folders it was read from.
    """

    spec: MacroSpec
    metadata: dict
    households: pd.DataFrame
    persons: pd.DataFrame
    weight_column: str
    settings: dict
    dropped: dict[str, int] = field(default_factory=dict)
    configs_dir: Path | None = None
    data_dir: Path | None = None

    @property
    def household_id(self) -> str:
        """str: The seed households' id column (``household_id_col``)."""
        return self.settings.get('household_id_col', 'hh_id')


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle) or {}


def _read_tables(settings: dict, data_dir: Path, configs_dir: Path) -> dict[str, pd.DataFrame]:
    tables = {}
    entries = settings.get('input_table_list')
    if not entries:
        raise SpecValidationError([('settings.yaml.input_table_list',
                                    'PopulationSim settings must list their input tables.')])
    for index, entry in enumerate(entries):
        path = data_dir / entry['filename']
        if not path.exists():
            raise SpecValidationError([(f'settings.yaml.input_table_list[{index}].filename',
                                        f"no file '{entry['filename']}' in {data_dir}.")])
        frame = pd.read_csv(path, comment='#')
        frame = frame.rename(columns=entry.get('rename_columns') or {})
        drop = entry.get('drop_columns') or []
        frame = frame.drop(columns=[column for column in drop if column in frame.columns])
        tables[entry['tablename']] = frame
    return tables


class _Comparison:
    """One ``column <op> number`` comparison of a control expression."""

    def __init__(self, table, column, operator, value):
        self.table, self.column, self.operator, self.value = table, column, operator, value


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id in ('np', 'numpy') and node.attr == 'inf':
        return math.inf
    return None


def _column(node: ast.AST, tables: set[str]) -> tuple[str, str] | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id in tables:
        return node.value.id, node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
            and node.value.id in tables and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        return node.value.id, node.slice.value
    return None


def _comparisons(node: ast.AST, tables: set[str]) -> list[_Comparison] | None:
    """The comparisons of a conjunction of single-column comparisons, or None."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
        left, right = _comparisons(node.left, tables), _comparisons(node.right, tables)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Compare) and len(node.ops) == 1 \
            and type(node.ops[0]) in _OPERATORS:
        operator = _OPERATORS[type(node.ops[0])]
        left, right = node.left, node.comparators[0]
        column, value = _column(left, tables), _number(right)
        if column is None:
            column, value = _column(right, tables), _number(left)
            operator = _FLIPPED[operator]
        if column is None or value is None or operator == '!=':
            return None
        return [_Comparison(column[0], column[1], operator, value)]
    return None


def _evaluate(node: ast.AST, frames: dict[str, pd.DataFrame], path: str) -> Any:
    """Evaluate a control expression on the seeds, with a closed set of operations."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, frames, path)
    number = _number(node)
    if number is not None:
        return number
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool)):
        return node.value
    column = _column(node, set(frames))
    if column is not None:
        table, name = column
        if name not in frames[table].columns:
            raise SpecValidationError([(path, f"'{table}' has no column '{name}'.")])
        return frames[table][name]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        left = _evaluate(node.left, frames, path)
        right = _evaluate(node.right, frames, path)
        return (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return ~_evaluate(node.operand, frames, path)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 \
            and type(node.ops[0]) in _OPERATORS:
        left = _evaluate(node.left, frames, path)
        right = _evaluate(node.comparators[0], frames, path)
        operator = _OPERATORS[type(node.ops[0])]
        return {'==': left == right, '!=': left != right, '>=': left >= right,
                '>': left > right, '<=': left <= right, '<': left < right}[operator]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == 'isin' and len(node.args) == 1 \
            and isinstance(node.args[0], (ast.List, ast.Tuple)):
        target = _evaluate(node.func.value, frames, path)
        values = [_evaluate(item, frames, path) for item in node.args[0].elts]
        return target.isin(values)
    raise SpecValidationError([(path, f'cannot translate {ast.unparse(node)!r}: control '
                                      'expressions may use seed columns, numbers, strings, '
                                      'comparisons, &, |, ~ and .isin([...]).')])


def _parse(expression: str, path: str) -> ast.Expression:
    try:
        return ast.parse(str(expression).strip(), mode='eval')
    except SyntaxError as error:
        raise SpecValidationError([(path, f'not a pandas expression: {error.msg}.')]) from None


def _interval(comparisons: list[_Comparison], low: float, high: float):
    """The [low, high) interval of integer values a conjunction selects."""
    for comparison in comparisons:
        value = comparison.value
        if comparison.operator == '==':
            low, high = max(low, value), min(high, value + 1)
        elif comparison.operator == '>=':
            low = max(low, math.ceil(value))
        elif comparison.operator == '>':
            low = max(low, math.floor(value) + 1)
        elif comparison.operator == '<=':
            high = min(high, math.floor(value) + 1)
        elif comparison.operator == '<':
            high = min(high, math.ceil(value))
    return low, high


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _zone_values(control_table: pd.DataFrame, level: str, field_name: str, zones: set[str],
                 path: str) -> dict[str, float]:
    if level not in control_table.columns or field_name not in control_table.columns:
        missing = level if level not in control_table.columns else field_name
        raise SpecValidationError([(path, f"the {level} control data has no column "
                                          f"'{missing}'.")])
    values = {}
    for zone, value in zip(control_table[level], control_table[field_name]):
        key = canonical_zone(zone)
        if key in zones:
            values[key] = float(value) if pd.notna(value) else 0.0
    return values


def load_populationsim(configs_dir: str | Path, data_dir: str | Path) -> PopulationSimProject:
    """Read a PopulationSim configuration (the folders ``populationsim -c -d`` takes).

    Args:
        configs_dir (str or pathlib.Path):
            The folder with ``settings.yaml`` and the controls file.
        data_dir (str or pathlib.Path):
            The folder with the seeds, the crosswalk and the control tables.

    Returns:
        PopulationSimProject

    Raises:
        SpecValidationError:
            With the file and field at fault, when a setting, a control or a table is missing
            or cannot be translated.
    """
    configs_dir, data_dir = Path(configs_dir), Path(data_dir)
    settings_path = configs_dir / 'settings.yaml'
    if not settings_path.exists():
        raise SpecValidationError([('settings.yaml', f'no settings.yaml in {configs_dir}.')])
    settings = _read_yaml(settings_path)
    if settings.get('NO_INTEGERIZATION_EVER'):
        LOGGER.info('settings.yaml sets NO_INTEGERIZATION_EVER; sdv-llmsynthor always writes '
                    'integer households.')
    for name in ('geographies', 'seed_geography', 'household_weight_col', 'total_hh_control'):
        if name not in settings:
            raise SpecValidationError([(f'settings.yaml.{name}', 'required setting missing.')])
    levels = [str(level) for level in settings['geographies']]
    seed_level = str(settings['seed_geography'])
    lowest = levels[-1]
    weight_column = settings['household_weight_col']
    household_id = settings.get('household_id_col', 'hh_id')
    tables = _read_tables(settings, data_dir, configs_dir)
    for required in ('households', 'persons', 'geo_cross_walk', f'{lowest}_control_data'):
        if required not in tables:
            raise SpecValidationError([('settings.yaml.input_table_list',
                                        f"no input table named '{required}'.")])
    controls_path = configs_dir / settings.get('control_file_name', 'controls.csv')
    controls = pd.read_csv(controls_path, comment='#')
    households, persons = tables['households'], tables['persons']
    dropped: dict[str, int] = {}

    # The crosswalk, as PopulationSim uses it: lowest zones that have controls.
    crosswalk = tables['geo_cross_walk']
    missing = [level for level in levels if level not in crosswalk.columns]
    if missing:
        raise SpecValidationError([('geo_cross_walk', 'no column for ' + ', '.join(missing))])
    lowest_controls = tables[f'{lowest}_control_data']
    controlled = {canonical_zone(zone) for zone in lowest_controls[lowest]}
    keep = crosswalk[lowest].map(canonical_zone).isin(controlled)
    if not keep.all():
        dropped[f'crosswalk {lowest} zones without controls'] = int((~keep).sum())
    crosswalk = crosswalk[keep].reset_index(drop=True)
    zone_sets = {level: {canonical_zone(zone) for zone in crosswalk[level]} for level in levels}

    # Seeds in the seed zones, with a positive weight, and their persons.
    seed_zone = households[seed_level].map(canonical_zone)
    weights = pd.to_numeric(households[weight_column], errors='coerce')
    keep = seed_zone.isin(zone_sets[seed_level]) & (weights > 0)
    if not keep.all():
        dropped['seed households outside the seed zones or without weight'] = int(
            (~keep).sum())
    households = households[keep].reset_index(drop=True)
    in_seed = persons[household_id].isin(households[household_id])
    if not in_seed.all():
        dropped['seed persons of dropped households'] = int((~in_seed).sum())
    persons = persons[in_seed].reset_index(drop=True)
    frames = {'households': households, 'persons': persons}

    total_name = settings['total_hh_control']
    total_rows = controls[controls['target'] == total_name]
    if total_rows.empty:
        raise SpecValidationError([(f'{controls_path.name}',
                                    f"no control row for total_hh_control '{total_name}'.")])
    total_field = str(total_rows.iloc[0]['control_field'])
    household_totals = _zone_values(lowest_controls, lowest, total_field, zone_sets[lowest],
                                    f'{lowest}_control_data.{total_field}')
    totals = {zone: int(round(household_totals.get(zone, 0)))
              for zone in (canonical_zone(z) for z in crosswalk[lowest])}

    others = controls[controls['target'] != total_name].reset_index()
    importance = pd.to_numeric(others['importance'], errors='coerce')
    median = float(importance.median()) if len(importance) else 1.0

    groups: dict[tuple, dict] = {}
    columns_spec: dict[str, dict[str, dict]] = {'households': {}, 'persons': {}}
    for position, row in others.iterrows():
        path = f"{controls_path.name}[row {int(row['index']) + 1}]"
        table = str(row['seed_table'])
        level = str(row['geography'])
        if table not in frames:
            raise SpecValidationError([(f'{path}.seed_table', f"unknown seed table '{table}': "
                                                              'households or persons.')])
        if level not in levels:
            raise SpecValidationError([(f'{path}.geography', f"unknown geography '{level}'; "
                                                             f"geographies: {levels}.")])
        control_table = tables.get(f'{level}_control_data')
        if control_table is None:
            raise SpecValidationError([(f'{path}.geography',
                                        f"no input table '{level}_control_data'.")])
        tree = _parse(row['expression'], f'{path}.expression')
        comparisons = _comparisons(tree.body, set(frames))
        if comparisons is not None and len({(c.table, c.column) for c in comparisons}) == 1 \
                and comparisons[0].table == table:
            column = comparisons[0].column
            if column not in frames[table].columns:
                raise SpecValidationError([(f'{path}.expression',
                                            f"'{table}' has no column '{column}'.")])
        else:
            column = f'{_INDICATOR_PREFIX}{row["target"]}'
            selected = _evaluate(tree, frames, f'{path}.expression')
            frames[table][column] = np.asarray(selected, dtype=bool).astype(np.int64)
            comparisons = [_Comparison(table, column, '==', 1.0)]
        weight = float(importance.iloc[position]) / median if median > 0 else 1.0
        group = groups.setdefault((level, table, column), {
            'targets': [], 'comparisons': [], 'fields': [], 'weights': []})
        group['targets'].append(str(row['target']))
        group['comparisons'].append(comparisons)
        group['fields'].append((control_table, str(row['control_field']), path))
        group['weights'].append(weight)

    statistics: dict[str, list] = {'households': [], 'persons': []}
    used_names: set[str] = set()
    for (level, table, column), group in groups.items():
        values = pd.to_numeric(frames[table][column], errors='coerce').dropna()
        integral = bool(len(values)) and bool(np.all(values == np.round(values)))
        if not integral:
            raise SpecValidationError([(f"{group['fields'][0][2]}.expression",
                                        f"'{table}.{column}' holds fractions or text; controls "
                                        'over it are not supported yet.')])
        low, high = float(values.min()), float(values.max()) + 1
        binned = any(c.operator != '==' for cs in group['comparisons'] for c in cs)
        intervals = [_interval(cs, low, high) for cs in group['comparisons']]
        if binned:
            edges = sorted({low, high} | {edge for interval in intervals for edge in interval
                                         if low <= edge <= high})
            column_spec = {'bins': [_json_number(edge) for edge in edges]}
            keys = [[[_json_number(a), _json_number(b)]] for a, b in intervals]
        else:
            column_spec = {'values': [_json_number(v) for v in sorted(values.unique())]}
            keys = [[_json_number(a)] for a, _ in intervals]
        previous = columns_spec[table].get(column)
        if previous is not None and previous != column_spec:
            merged = sorted(set(previous.get('bins', previous.get('values', [])))
                            | set(column_spec.get('bins', column_spec.get('values', []))))
            column_spec = {'bins': merged} if 'bins' in previous or binned else {
                'values': merged}
        columns_spec[table][column] = column_spec
        covered = {value for a, b in intervals for value in range(int(a), int(min(b, high)))}
        complete = covered >= {int(value) for value in values.unique()}
        zones: dict[str, list[float]] = {zone: [] for zone in sorted(zone_sets[level])}
        for control_table, field_name, _ in group['fields']:
            found = _zone_values(control_table, level, field_name, zone_sets[level],
                                 f'{level}_control_data.{field_name}')
            for zone in zones:
                zones[zone].append(_json_number(found.get(zone, 0.0)))
        name = _statistic_name(group['targets'], used_names)
        statistics[table].append({
            'name': name, 'columns': [column], 'level': level, 'measure': 'count',
            'keys': keys, 'zones': zones, 'complete': bool(complete),
            'weight': float(np.median(group['weights'])),
            'source': 'PopulationSim controls: ' + ', '.join(group['targets']),
        })

    geography = {
        'table': 'households',
        'levels': levels,
        'crosswalk': {'columns': levels,
                      'rows': [[_zone_cell(value) for value in row]
                               for row in crosswalk[levels].itertuples(index=False)]},
        'totals': {'households': totals},
        'seed_level': seed_level,
    }
    spec_dict = {
        'spec_version': '1.1',
        'name': f'PopulationSim configuration {configs_dir.name}',
        'geography': geography,
        'tables': {
            table: {'columns': columns_spec[table], 'statistics': statistics[table]}
            for table in ('households', 'persons')
        },
        'relationships': [{'parent_table': 'households', 'child_table': 'persons',
                           'parent_primary_key': household_id,
                           'child_foreign_key': household_id}],
    }
    size_column = _size_column(frames, household_id)
    if size_column is not None:
        # Records made from the spec (no seed) must agree with their persons, as seeds do.
        spec_dict['tables']['households']['rules'] = [{
            'name': f'{size_column}_counts_persons',
            'expression': f'{size_column} == persons__count'}]
    spec = MacroSpec.from_dict(spec_dict)
    metadata = _seed_metadata(frames, household_id, levels, columns_spec)
    return PopulationSimProject(spec, metadata, frames['households'], frames['persons'],
                                weight_column, settings, dropped, configs_dir, data_dir)


def _size_column(frames: dict[str, pd.DataFrame], household_id: str) -> str | None:
    """The household column that counts the household's persons in 99% of the seeds."""
    households, persons = frames['households'], frames['persons']
    if household_id not in persons.columns or not len(households):
        return None
    sizes = persons.groupby(household_id).size().reindex(households[household_id]).fillna(0)
    for column in households.columns:
        if column == household_id or not pd.api.types.is_numeric_dtype(households[column]):
            continue
        if float((households[column].to_numpy() == sizes.to_numpy()).mean()) >= 0.99:
            return column
    return None


def _zone_cell(value: Any) -> Any:
    zone = canonical_zone(value)
    return int(zone) if zone is not None and zone.lstrip('-').isdigit() else zone


def _statistic_name(targets: list[str], used: set[str]) -> str:
    if len(targets) == 1:
        name = targets[0]
    else:
        prefix = targets[0]
        for target in targets[1:]:
            while not target.startswith(prefix):
                prefix = prefix[:-1]
        name = prefix.rstrip('_') if len(prefix.rstrip('_')) >= 3 else '+'.join(targets)
    base, suffix = name, 2
    while name in used:
        name = f'{base}_{suffix}'
        suffix += 1
    used.add(name)
    return name


def _seed_metadata(frames, household_id, levels, columns_spec) -> dict:
    tables = {}
    for table, frame in frames.items():
        columns = {}
        for column in frame.columns:
            if column == household_id or column in levels:
                # Zone ids are not sampled: the engine assigns zones.
                columns[column] = {'sdtype': 'id'}
            elif column in columns_spec[table] or pd.api.types.is_numeric_dtype(frame[column]):
                columns[column] = {'sdtype': 'numerical'}
                values = pd.to_numeric(frame[column], errors='coerce').dropna()
                if len(values) and bool(np.all(values == np.round(values))):
                    columns[column]['decimal_places'] = 0
            else:
                columns[column] = {'sdtype': 'categorical'}
        tables[table] = {'columns': columns}
    tables['households']['primary_key'] = household_id
    return {
        'METADATA_SPEC_VERSION': 'V1',
        'tables': tables,
        'relationships': [{'parent_table_name': 'households', 'child_table_name': 'persons',
                           'parent_primary_key': household_id,
                           'child_foreign_key': household_id}],
    }


def _activitysim_frames(households: pd.DataFrame, persons: pd.DataFrame,
                        project: PopulationSimProject) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic tables with PopulationSim's output columns."""
    from sdv_llmsynthor.geo.engine import SEED_ID_COLUMN

    levels = project.spec.geography.levels
    household_id = project.household_id
    out_settings = project.settings.get('output_synthetic_population') or {}
    new_id = out_settings.get('household_id', 'household_id')
    hh_columns = list((out_settings.get('households') or {}).get('columns') or [])
    per_columns = list((out_settings.get('persons') or {}).get('columns') or [])
    hh = pd.DataFrame({new_id: households[household_id].to_numpy(),
                       household_id: households[SEED_ID_COLUMN].to_numpy()})
    for level in levels:
        hh[level] = households[level].map(_zone_cell).to_numpy()
    for column in hh_columns:
        if column in households.columns and column not in hh.columns:
            hh[column] = households[column].to_numpy()
    zones_of = hh.set_index(new_id)[levels]
    per = pd.DataFrame({new_id: persons[household_id].to_numpy()})
    for level in levels:
        per[level] = zones_of[level].reindex(per[new_id]).to_numpy()
    for column in per_columns:
        if column in persons.columns and column not in per.columns:
            per[column] = persons[column].to_numpy()
    return hh, per


def write_populationsim_outputs(result: Any, project: PopulationSimProject,
                                output_dir: str | Path) -> dict[str, Path]:
    """Write ActivitySim-style ``synthetic_households.csv``, ``synthetic_persons.csv``, summaries.

    The files are named as ``output_synthetic_population`` in settings.yaml says; households
    carry ``household_id`` (1-based), the seed's id column and every geography's zone, then
    the listed columns; persons carry ``household_id``, the zones and their listed columns.
    ``summary_<GEOGRAPHY>.csv`` holds every control's target, result and difference per zone.

    Args:
        result (PopulationResult or ShardedResult):
            From :func:`sdv_llmsynthor.geo.synthesize_population`, or from
            :func:`sdv_llmsynthor.geo.shards.synthesize_population_sharded` (its Parquet parts
            are converted one shard at a time).
        project (PopulationSimProject):
            The configuration the result was made from.
        output_dir (str or pathlib.Path):
            Created when missing.

    Returns:
        dict[str, pathlib.Path]:
            The files written, by kind.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    out_settings = project.settings.get('output_synthetic_population') or {}
    paths = {}
    paths['households'] = output_dir / (out_settings.get('households') or {}).get(
        'filename', 'synthetic_households.csv')
    paths['persons'] = output_dir / (out_settings.get('persons') or {}).get(
        'filename', 'synthetic_persons.csv')
    if hasattr(result, 'tables'):
        parts = [(result.tables['households'], result.tables['persons'])]
    else:  # a sharded result: stream its Parquet parts, one shard in memory at a time
        households_parts = sorted((result.output_dir / 'households').glob('part-*.parquet'))
        parts = ((pd.read_parquet(part),
                  pd.read_parquet(result.output_dir / 'persons' / part.name))
                 for part in households_parts)
    for index, (households, persons) in enumerate(parts):
        hh, per = _activitysim_frames(households, persons, project)
        mode, header = ('w', True) if index == 0 else ('a', False)
        hh.to_csv(paths['households'], index=False, mode=mode, header=header)
        per.to_csv(paths['persons'], index=False, mode=mode, header=header)
    levels = project.spec.geography.levels
    report = result.report
    for level in levels:
        own = report[(report['level'] == level) & ~report['aggregated']]
        if own.empty:
            continue
        path = output_dir / f'summary_{level}.csv'
        own.drop(columns=['aggregated']).to_csv(path, index=False)
        paths[f'summary_{level}'] = path
    return paths
