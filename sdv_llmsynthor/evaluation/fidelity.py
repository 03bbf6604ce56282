"""Macro-fidelity report: how closely synthetic data matches the spec's target statistics.

For every statistic of the spec (marginals, joints, child counts, cross-table statistics) the
synthetic rows are counted exactly as the engine counts them (``core.encoding`` and
``core.aggregate``: same bins, same cells, derived parent columns aggregated from child rows),
and compared with the targets:

- ``tvd``: total variation distance between target and synthetic shares over the listed cells
  plus the *rest* (rows in no listed cell), as in ``core.discrepancy``;
- ``max_abs_error``: the largest absolute difference of shares over the same cells;
- ``wasserstein`` (one-column statistics over numeric or datetime columns): the 1-Wasserstein
  distance between the target histogram and the synthetic histogram, **each cell's mass placed
  at its midpoint** (the midpoint of the interval of a binned column, the value itself for a
  discrete column), in the column's unit (days for datetimes). Comparing midpoint histograms
  on both sides makes the number depend on the cell masses only, so it is 0 when the shares
  match and never exceeds the largest cell width times the TVD; ``cell_width`` gives the mean
  interval width to read it against ("bounded by the bin widths").

When a run is given (an :class:`~sdv_llmsynthor.synthesizers.LLMSynthorSynthesizer`, its
``get_run_report()`` dict, or the engine's ``SynthesisResult``), the report also holds the
rejection table (records rejected per validity rule or constraint), the discarded LLM outputs
per reason, the LLM usage and the convergence history.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import EvaluationError

__all__ = ['FidelityReport', 'fidelity_report', 'normalize_run_report']

_SECONDS_PER_DAY = 86400.0
_MAX_BAR_CELLS = 60
_MAX_HEATMAP_LEVELS = 60


# ---------------------------------------------------------------------- inputs
def _load_spec(spec):
    from sdv_llmsynthor.spec import MacroSpec

    if isinstance(spec, MacroSpec):
        return spec
    if isinstance(spec, dict):
        return MacroSpec.from_dict(spec)
    if isinstance(spec, (str, Path)):
        return MacroSpec.load(spec)
    raise TypeError(f'spec must be a MacroSpec, a dict or a path, got {type(spec).__name__}.')


def _load_metadata(metadata):
    """An SDV ``Metadata`` from itself, its dict, a JSON path or an older metadata object."""
    from sdv.metadata import Metadata

    if isinstance(metadata, Metadata):
        return metadata
    if isinstance(metadata, dict):
        return Metadata.load_from_dict(metadata)
    if isinstance(metadata, (str, Path)):
        return Metadata.load_from_json(str(metadata))
    return Metadata.load_from_dict(metadata.to_dict())


def _as_tables(data, metadata, name='synthetic', check_names=True, value_error=EvaluationError,
               type_error=EvaluationError) -> dict[str, pd.DataFrame]:
    """Tables by name from one DataFrame (one-table metadata) or a dict of DataFrames.

    Args:
        data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            The rows.
        metadata (sdv.metadata.Metadata):
            Their metadata.
        name (str):
            The argument's name, for the messages.
        check_names (bool):
            Reject dict keys that are not tables of the metadata.
        value_error, type_error (type):
            The exception classes raised for a wrong value and for a wrong type.

    Returns:
        dict[str, pandas.DataFrame]
    """
    if isinstance(data, pd.DataFrame):
        names = list(metadata.tables)
        if len(names) != 1:
            raise value_error(
                f'{name} is one DataFrame but the metadata has tables {names}; pass a dict '
                'mapping each table name to its DataFrame.'
            )
        return {names[0]: data}
    if isinstance(data, dict):
        unknown = [table for table in data if table not in metadata.tables]
        if check_names and unknown:
            raise value_error(
                f'The metadata has no table(s) {unknown}; tables: {sorted(metadata.tables)}.'
            )
        return dict(data)
    raise type_error(
        f'{name} must be a DataFrame or a dict of DataFrames, got {type(data).__name__}.'
    )


def _output_folder(output_dir) -> Path:
    """The folder a report is written to, created if needed."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _slug(text, max_length=80):
    """A file-name-safe lower-case form of ``text`` (at most ``max_length`` characters)."""
    slug = re.sub(r'[^A-Za-z0-9]+', '_', str(text)).strip('_').lower()
    return slug if max_length is None else slug[:max_length]


def _relationship_keys(spec, metadata, relationship):
    parent_key = relationship.parent_primary_key
    child_key = relationship.child_foreign_key
    if parent_key is None or child_key is None:
        for rel in metadata.to_dict().get('relationships', []):
            if (rel['parent_table_name'] == relationship.parent_table
                    and rel['child_table_name'] == relationship.child_table):
                parent_key = parent_key or rel['parent_primary_key']
                child_key = child_key or rel['child_foreign_key']
                break
    return parent_key, child_key


def add_derived_columns(spec, metadata, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Add each parent table's derived columns (child counts, cross-table aggregates).

    Args:
        spec (MacroSpec):
            The spec declaring the derived columns.
        metadata (sdv.metadata.Metadata):
            The metadata (for the relationship keys the spec leaves out).
        tables (dict[str, pandas.DataFrame]):
            The synthetic tables.

    Returns:
        dict[str, pandas.DataFrame]:
            The same tables; parents get their derived columns (copies, inputs untouched).
    """
    from sdv_llmsynthor.core.aggregate import compute_derived_columns

    out = dict(tables)
    for relationship in spec.relationships:
        parent, child = relationship.parent_table, relationship.child_table
        if parent not in out or child not in out or parent not in spec.tables:
            continue
        derived = {
            name: definition
            for name, definition in spec.tables[parent].derived_columns.items()
            if definition.child_table == child
        }
        if not derived:
            continue
        parent_key, child_key = _relationship_keys(spec, metadata, relationship)
        parent_frame = out[parent]
        child_frame = tables[child]
        positions = pd.Index(parent_frame[parent_key]).get_indexer(child_frame[child_key])
        known = positions >= 0
        values = compute_derived_columns(
            derived, child_frame.loc[known].reset_index(drop=True), positions[known],
            len(parent_frame),
        )
        parent_frame = parent_frame.copy()
        for name in values.columns:
            parent_frame[name] = values[name].to_numpy()
        out[parent] = parent_frame
    return out


def normalize_run_report(run) -> dict[str, Any]:
    """Turn a run (synthesizer, ``get_run_report()`` dict or ``SynthesisResult``) into a dict.

    Args:
        run (object or dict or None):
            The run.

    Returns:
        dict:
            With the keys ``history`` (DataFrame or None), ``rejections`` (DataFrame or None),
            ``discarded`` (dict), ``usage`` (dict or None) and ``unmet`` (list).
    """
    if run is None:
        return {'history': None, 'rejections': None, 'discarded': {}, 'usage': None, 'unmet': []}
    if hasattr(run, 'get_run_report'):
        run = run.get_run_report()
    if not isinstance(run, dict):
        run = {
            'history': getattr(run, 'history', None),
            'rejections': _first_attribute(run, ('rejections', 'rejection_table')),
            'usage': getattr(run, 'usage', None),
            'unmet': _first_attribute(run, ('unmet', 'unmet_statistics')),
        }
    history = run.get('history')
    if history is not None and not isinstance(history, pd.DataFrame):
        history = pd.DataFrame([
            item if isinstance(item, dict) else getattr(item, '__dict__', {}) for item in history
        ])
    rejections = run.get('rejections')
    if rejections is not None and not isinstance(rejections, pd.DataFrame):
        if isinstance(rejections, dict):
            rejections = pd.DataFrame(
                [{'rule': key, 'rejected': value} for key, value in rejections.items()])
        else:
            rejections = pd.DataFrame(rejections)
    usage = run.get('usage')
    if usage is not None and not isinstance(usage, dict):
        usage = usage.as_dict() if hasattr(usage, 'as_dict') else dict(vars(usage))
    discarded = run.get('discarded')
    if discarded is None and usage:
        discarded = usage.get('discarded', {})
    unmet = run.get('unmet')
    if isinstance(unmet, pd.DataFrame):
        unmet = unmet.to_dict('records')
    return {
        'history': history,
        'rejections': rejections,
        'discarded': dict(discarded or {}),
        'usage': usage,
        'unmet': list(unmet) if unmet is not None else [],
    }


def _first_attribute(obj, names):
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


# ---------------------------------------------------------------------- per statistic
def _cell_points(statistic):
    """Midpoint (or value) and width of every listed cell of a one-column numeric statistic."""
    encoder = statistic.encoders[0]
    if encoder.kind not in ('numerical', 'datetime') or statistic.is_joint:
        return None
    ranges = statistic.cell_code_ranges(0)
    if encoder.is_binned:
        lows = encoder.edges[ranges[:, 0]]
        highs = encoder.edges[ranges[:, 1]]
        points = (lows + highs) / 2.0
        widths = highs - lows
    elif encoder.is_discrete:
        points = encoder.values[ranges[:, 0]].astype(float)
        widths = np.zeros(len(points))
    else:
        return None
    if encoder.kind == 'datetime':
        points = points / _SECONDS_PER_DAY
        widths = widths / _SECONDS_PER_DAY
    return points, widths


def _wasserstein(points, target, synthetic):
    from scipy.stats import wasserstein_distance

    if target.sum() <= 0 or synthetic.sum() <= 0 or len(points) == 0:
        return math.nan
    return float(wasserstein_distance(points, points, u_weights=target, v_weights=synthetic))


def _statistic_row(item, table, rows):
    statistic = item.statistic
    row = {
        'table': table,
        'statistic': item.label,
        'columns': ', '.join(statistic.columns),
        'kind': 'joint' if statistic.is_joint else 'marginal',
        'cells': statistic.num_cells,
        'tvd': float(item.tvd),
        'max_abs_error': float(item.max_abs_error),
        'wasserstein': math.nan,
        'cell_width': math.nan,
        'tolerance': float(statistic.tolerance),
        'weight': float(statistic.weight),
        'met': bool(item.is_met(slack=1.0 / rows if rows else 0.0)),
    }
    if statistic.implicit:
        row['kind'] = 'child count'
    elif any(encoder.derived is not None for encoder in statistic.encoders):
        row['kind'] = 'cross-table ' + row['kind']
    cells = _cell_points(statistic)
    if cells is not None:
        points, widths = cells
        synthetic = item.counts / rows if rows else np.zeros_like(item.counts)
        row['wasserstein'] = _wasserstein(points, statistic.shares, synthetic)
        row['cell_width'] = float(widths.mean()) if len(widths) else math.nan
    return row


def _cell_frame(item, rows):
    statistic = item.statistic
    synthetic = item.counts / rows if rows else np.zeros_like(item.counts)
    frame = pd.DataFrame({
        'cell': [statistic.describe_cell(i) for i in range(statistic.num_cells)],
        'target_share': statistic.shares,
        'synthetic_share': synthetic,
    })
    rest_target = statistic.rest_share
    rest_synthetic = item.rest_count / rows if rows else 0.0
    if rest_target > 1e-12 or rest_synthetic > 1e-12:
        frame.loc[len(frame)] = ['(rest: no listed cell)', rest_target, rest_synthetic]
    frame['error'] = frame['synthetic_share'] - frame['target_share']
    return frame


# ---------------------------------------------------------------------- report
@dataclass
class FidelityReport:
    """Per-statistic fidelity of synthetic data to a spec, with the run's tables.

    Args:
        statistics (pandas.DataFrame):
            One row per statistic: ``table``, ``statistic``, ``columns``, ``kind``, ``cells``,
            ``tvd``, ``max_abs_error``, ``wasserstein``, ``cell_width``, ``tolerance``,
            ``weight``, ``met`` (every cell within tolerance plus one record).
        cells (dict[tuple[str, str], pandas.DataFrame]):
            Per ``(table, statistic)``: target and synthetic share of every cell.
        num_rows (dict[str, int]):
            Synthetic rows per table.
        rejections (pandas.DataFrame or None):
            Records rejected per validity rule or constraint.
        discarded (dict[str, int]):
            Discarded LLM outputs (or proposals) per reason.
        usage (dict or None):
            LLM usage (calls, tokens, cached calls, model).
        history (pandas.DataFrame or None):
            Per-iteration history of the run (for the convergence curve).
        unmet (list):
            Statistics the run reported as outside their tolerance.
        name (str or None):
            The spec's name.
    """

    statistics: pd.DataFrame
    cells: dict = field(default_factory=dict)
    num_rows: dict = field(default_factory=dict)
    rejections: pd.DataFrame | None = None
    discarded: dict = field(default_factory=dict)
    usage: dict | None = None
    history: pd.DataFrame | None = None
    unmet: list = field(default_factory=list)
    name: str | None = None
    _compiled: dict = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """Return the per-statistic table (a copy)."""
        return self.statistics.copy()

    def summary(self) -> dict[str, float]:
        """Return the mean and max TVD, max absolute error and share of statistics met."""
        frame = self.statistics
        if frame.empty:
            return {'statistics': 0, 'mean_tvd': 0.0, 'max_tvd': 0.0, 'max_abs_error': 0.0,
                    'met': 1.0}
        return {
            'statistics': int(len(frame)),
            'mean_tvd': float(frame['tvd'].mean()),
            'max_tvd': float(frame['tvd'].max()),
            'max_abs_error': float(frame['max_abs_error'].max()),
            'met': float(frame['met'].mean()),
        }

    # -------------------------------------------------------------- markdown
    def to_markdown(self, path=None) -> str:
        """Render the report as markdown, and write it to ``path`` when given.

        Args:
            path (str or pathlib.Path or None):
                File to write.

        Returns:
            str
        """
        lines = [f'# Fidelity report{": " + self.name if self.name else ""}', '']
        rows = ', '.join(f'{table}: {count:,}' for table, count in self.num_rows.items())
        summary = self.summary()
        lines += [
            f'Synthetic rows: {rows}.', '',
            f'{summary["statistics"]} statistics; mean TVD {summary["mean_tvd"]:.4f}, max TVD '
            f'{summary["max_tvd"]:.4f}, max absolute cell error {summary["max_abs_error"]:.4f}; '
            f'{summary["met"]:.0%} within tolerance (plus one record).', '',
            'TVD and max absolute error are over cell shares (listed cells plus the rest). '
            'Wasserstein: 1-Wasserstein distance between the target and synthetic histograms '
            'with each cell at its midpoint, in the column\'s unit (days for datetimes); '
            '`cell_width` is the mean width of the cells.', '',
            '## Statistics', '', _frame_to_markdown(self.statistics, floats='{:.4f}'), '',
        ]
        if self.unmet:
            lines += ['## Statistics the run could not meet (as the run reported them)', '']
            lines += [f'- {_render_unmet(item)}' for item in self.unmet]
            lines.append('')
        if self.rejections is not None:
            lines += ['## Rejected records', '']
            if self.rejections.empty:
                lines.append('No record was rejected.')
            else:
                lines.append(_frame_to_markdown(self.rejections))
            lines.append('')
        if self.discarded:
            lines += ['## Discarded LLM outputs', '', '| reason | count |', '|---|---|']
            lines += [f'| {reason} | {count} |' for reason, count in sorted(self.discarded.items())]
            lines.append('')
        if self.usage:
            lines += ['## LLM usage', '', '| item | value |', '|---|---|']
            for key, value in self.usage.items():
                if key == 'discarded':
                    continue
                lines.append(f'| {key} | {_plain_value(value)} |')
            lines.append('')
        if self.history is not None and not self.history.empty:
            wanted = ['iteration', 'pool_rows', 'records_added', 'rejected', 'mean_tvd',
                      'max_tvd', 'llm_calls', 'planner_seconds']
            history = self.history[[c for c in wanted if c in self.history.columns]]
            lines += ['## Convergence (fit run, last 15 iterations)', '',
                      _frame_to_markdown(history.tail(15), floats='{:.4f}'), '']
        text = '\n'.join(lines)
        if path is not None:
            Path(path).write_text(text, encoding='utf-8')
        return text

    # -------------------------------------------------------------- files
    def save(self, output_dir) -> list[Path]:
        """Write ``report.md``, ``statistics.csv``, ``cells.csv`` and PNG plots to a folder.

        Plots: ``marginal_<table>_<statistic>.png`` (target vs synthetic bars) for every
        one-column statistic, ``joint_<table>_<statistic>.png`` (target, synthetic and
        difference heatmaps) for every two-column statistic, and ``convergence.png`` (mean and
        max TVD per iteration) when the run's history is known.

        Args:
            output_dir (str or pathlib.Path):
                The folder (created if needed).

        Returns:
            list[pathlib.Path]:
                The files written.
        """
        folder = _output_folder(output_dir)
        files = []
        markdown = folder / 'report.md'
        self.to_markdown(markdown)
        files.append(markdown)
        statistics_path = folder / 'statistics.csv'
        self.statistics.to_csv(statistics_path, index=False)
        files.append(statistics_path)
        cells = []
        for (table, label), frame in self.cells.items():
            cells.append(frame.assign(table=table, statistic=label))
        if cells:
            cells_path = folder / 'cells.csv'
            columns = ['table', 'statistic', 'cell', 'target_share', 'synthetic_share', 'error']
            pd.concat(cells, ignore_index=True)[columns].to_csv(cells_path, index=False)
            files.append(cells_path)
        if self.rejections is not None:
            path = folder / 'rejections.csv'
            self.rejections.to_csv(path, index=False)
            files.append(path)
        if self.usage:
            path = folder / 'usage.json'
            path.write_text(json.dumps(self.usage, indent=2, default=_plain_value),
                            encoding='utf-8')
            files.append(path)
        files.extend(self._plot(folder))
        return files

    def _plot(self, folder: Path) -> list[Path]:
        import matplotlib

        matplotlib.use('Agg', force=False)
        import matplotlib.pyplot as plt

        files = []
        for (table, label), frame in self.cells.items():
            statistic = self._compiled.get((table, label))
            if statistic is None:
                continue
            slug = _slug(f'{table}_{label}')
            if not statistic.is_joint:
                path = folder / f'marginal_{slug}.png'
                _plot_bars(plt, frame, f'{table}: {label}', path)
                files.append(path)
            elif len(statistic.columns) == 2:
                path = folder / f'joint_{slug}.png'
                if _plot_heatmaps(plt, statistic, frame, f'{table}: {label}', path):
                    files.append(path)
        if self.history is not None and not self.history.empty:
            path = folder / 'convergence.png'
            if _plot_convergence(plt, self.history, path):
                files.append(path)
        return files


def _plain_value(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (set, tuple)):
        return list(value)
    return value


def _render_unmet(item):
    if isinstance(item, dict):
        parts = [str(item.get('statistic') or item.get('name') or item.get('label') or '')]
        for key in ('tvd', 'max_abs_error', 'reason'):
            if key in item and item[key] is not None:
                value = item[key]
                parts.append(f'{key} {value:.4f}' if isinstance(value, float) else f'{value}')
        return '; '.join(part for part in parts if part)
    return str(item)


def _frame_to_markdown(frame: pd.DataFrame, floats: str = '{:.4g}') -> str:
    if frame.empty:
        return '(empty)'
    header = '| ' + ' | '.join(str(column) for column in frame.columns) + ' |'
    separator = '|' + '|'.join('---' for _ in frame.columns) + '|'
    lines = [header, separator]
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, (float, np.floating)):
                cells.append('' if math.isnan(value) else floats.format(value))
            else:
                cells.append(str(value).replace('|', '\\|'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _plot_bars(plt, frame, title, path):
    frame = frame.head(_MAX_BAR_CELLS)
    positions = np.arange(len(frame))
    width = max(6.0, min(18.0, 0.35 * len(frame) + 3))
    figure, axis = plt.subplots(figsize=(width, 4.2))
    axis.bar(positions - 0.2, frame['target_share'], width=0.4, label='target')
    axis.bar(positions + 0.2, frame['synthetic_share'], width=0.4, label='synthetic')
    axis.set_xticks(positions)
    labels = [_short_cell(text) for text in frame['cell']]
    axis.set_xticklabels(labels, rotation=60 if len(frame) > 6 else 0, ha='right', fontsize=7)
    axis.set_ylabel('share of rows')
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _short_cell(text):
    text = str(text)
    if text.startswith('= '):
        text = text[2:]
    elif text.startswith('in '):
        text = text[3:]
    elif ' = ' in text and ' & ' not in text:
        text = text.split(' = ', 1)[1]
    elif ' in ' in text and ' & ' not in text:
        text = text.split(' in ', 1)[1]
    return text if len(text) <= 28 else text[:25] + '...'


def _plot_heatmaps(plt, statistic, frame, title, path):
    levels = [len(statistic.level_ranges[j]) for j in range(2)]
    if min(levels) == 0 or max(levels) > _MAX_HEATMAP_LEVELS:
        return False
    target = np.full(levels, np.nan)
    synthetic = np.full(levels, np.nan)
    num_cells = statistic.num_cells
    cell_levels = statistic.cell_levels
    target[cell_levels[:, 0], cell_levels[:, 1]] = frame['target_share'].to_numpy()[:num_cells]
    synthetic[cell_levels[:, 0], cell_levels[:, 1]] = (
        frame['synthetic_share'].to_numpy()[:num_cells])
    labels = []
    for j in range(2):
        encoder = statistic.encoders[j]
        labels.append([
            _short_cell(encoder.render_code_range(tuple(int(x) for x in code_range)))
            for code_range in statistic.level_ranges[j]
        ])
    figure, axes = plt.subplots(1, 3, figsize=(15, max(3.5, 0.3 * levels[0] + 2)))
    vmax = np.nanmax([np.nanmax(target), np.nanmax(synthetic), 1e-12])
    difference = synthetic - target
    limit = max(np.nanmax(np.abs(difference)), 1e-12)
    panels = (('target', target, 'viridis', 0, vmax), ('synthetic', synthetic, 'viridis', 0, vmax),
              ('synthetic - target', difference, 'RdBu_r', -limit, limit))
    for axis, (name, values, cmap, low, high) in zip(axes, panels):
        image = axis.imshow(values, aspect='auto', cmap=cmap, vmin=low, vmax=high)
        axis.set_title(name)
        axis.set_yticks(range(levels[0]))
        axis.set_yticklabels(labels[0], fontsize=7)
        axis.set_xticks(range(levels[1]))
        axis.set_xticklabels(labels[1], rotation=60, ha='right', fontsize=7)
        axis.set_ylabel(statistic.columns[0])
        axis.set_xlabel(statistic.columns[1])
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def _plot_convergence(plt, history, path):
    x_column = 'iteration' if 'iteration' in history.columns else None
    curves = [column for column in ('mean_tvd', 'max_tvd') if column in history.columns]
    if not curves:
        return False
    x_values = history[x_column] if x_column else np.arange(len(history))
    figure, axis = plt.subplots(figsize=(7, 4))
    for column in curves:
        axis.plot(x_values, history[column], marker='o', markersize=3, label=column)
    axis.set_xlabel('iteration')
    axis.set_ylabel('TVD to the targets (pool)')
    axis.set_yscale('log')
    axis.set_title('Convergence')
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True


def fidelity_report(spec, synthetic, metadata, run=None, output_dir=None) -> FidelityReport:
    """Compare synthetic data with every target statistic of a spec.

    Args:
        spec (MacroSpec, dict or path):
            The spec holding the targets.
        synthetic (pandas.DataFrame or dict[str, pandas.DataFrame]):
            The synthetic rows: one table, or every table by name (parent/child).
        metadata (sdv.metadata.Metadata, dict or path):
            The SDV metadata.
        run (object or None):
            An ``LLMSynthorSynthesizer`` (or multi-table one), its ``get_run_report()`` dict,
            or the engine's ``SynthesisResult``: adds the rejection and discard tables, the LLM
            usage and the convergence history.
        output_dir (str or pathlib.Path or None):
            When given, :meth:`FidelityReport.save` writes the report there.

    Returns:
        FidelityReport
    """
    from sdv_llmsynthor.core.aggregate import aggregate_frame
    from sdv_llmsynthor.core.discrepancy import compute_discrepancy, statistic_labels
    from sdv_llmsynthor.core.encoding import compile_table

    spec = _load_spec(spec)
    metadata = _load_metadata(metadata)
    tables = _as_tables(synthetic, metadata)
    tables = add_derived_columns(spec, metadata, tables)
    all_statistics = []
    encodings = {}
    for table in spec.tables:
        if table not in tables:
            continue
        encodings[table] = compile_table(spec, metadata, table)
        all_statistics.extend(encodings[table].statistics)
    labels = dict(zip(map(id, all_statistics), statistic_labels(all_statistics)))

    rows = []
    cells = {}
    compiled = {}
    for table, encoding in encodings.items():
        frame = tables[table]
        counts = aggregate_frame(encoding, frame)
        table_labels = [labels[id(statistic)] for statistic in encoding.statistics]
        discrepancy = compute_discrepancy(counts, {table: len(frame)}, labels=table_labels)
        for item in discrepancy.statistics:
            rows.append(_statistic_row(item, table, len(frame)))
            cells[(table, item.label)] = _cell_frame(item, len(frame))
            compiled[(table, item.label)] = item.statistic

    columns = ['table', 'statistic', 'columns', 'kind', 'cells', 'tvd', 'max_abs_error',
               'wasserstein', 'cell_width', 'tolerance', 'weight', 'met']
    run_info = normalize_run_report(run)
    report = FidelityReport(
        statistics=pd.DataFrame(rows, columns=columns),
        cells=cells,
        num_rows={table: len(frame) for table, frame in tables.items() if table in spec.tables},
        rejections=run_info['rejections'],
        discarded=run_info['discarded'],
        usage=run_info['usage'],
        history=run_info['history'],
        unmet=run_info['unmet'],
        name=spec.name,
        _compiled=compiled,
    )
    if output_dir is not None:
        report.save(output_dir)
    return report
