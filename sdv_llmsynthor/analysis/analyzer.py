"""The statistical analyzer of SYNTHIA (papers/004, Sections 3.3 and D.5), reusable on its own.

:class:`StatisticalAnalyzer` compares synthetic rows with real rows and returns an
:class:`AnalysisReport`:

- per numeric (and datetime) column: the Kolmogorov-Smirnov statistic, KL and JS divergence on
  shared bins (quantile bins of the real column, open-ended outer bins, a bin for missing
  values), range coverage ``s_range`` and the share of values outside the real range;
- per categorical column: the chi-squared statistic and its p-value (expected counts from the
  smoothed real frequencies), KL and JS divergence on the shared categories, total variation
  distance, category coverage ``s_cat`` with the missing categories, and the most over- and
  under-represented categories;
- correlation similarity: numeric Pearson matrices and categorical association matrices
  (bias-corrected Cramer's V), compared pair by pair, with the largest gaps and "rigid" pairs
  (synthetic association near 1 where the real one is not, a sign of copied joint patterns);
- privacy flags: synthetic rows that copy a real row exactly, or that lie closer to a real row
  than the ``near_copy_quantile`` of real-to-real nearest-neighbour distances (a normalised
  mixed-type Gower distance; see :class:`NearCopyIndex`).

The real side can be profiled once (:meth:`StatisticalAnalyzer.profile`) and reused, so an
iterative loop only pays for the synthetic side.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.metrics import bin_codes, quantile_edges

__all__ = [
    'AnalysisReport',
    'NearCopyIndex',
    'ReferenceProfile',
    'StatisticalAnalyzer',
    'get_column_kinds',
]

MISSING = '<missing>'
"""The category that stands for a missing value in categorical diagnostics."""

NUMERIC_KINDS = ('numerical', 'datetime')
ANALYZED_KINDS = ('numerical', 'datetime', 'categorical')
_EXACT_TOLERANCE = 1e-9
_RIGID_SYNTHETIC = 0.95
_RIGID_REAL = 0.8


# --------------------------------------------------------------------------------------------
# Column kinds and value conversion
# --------------------------------------------------------------------------------------------
def _single_table_dict(metadata: Any, table_name: str | None = None) -> dict[str, Any]:
    """Return the single-table metadata dict (``columns``, ``primary_key``...) of ``metadata``."""
    as_dict = metadata.to_dict() if hasattr(metadata, 'to_dict') else dict(metadata)
    if 'tables' in as_dict:
        tables = as_dict['tables']
        if table_name is None:
            if len(tables) != 1:
                raise EvaluationError(
                    f'The metadata holds {len(tables)} tables {sorted(tables)}: pass table_name.'
                )
            table_name = next(iter(tables))
        if table_name not in tables:
            raise EvaluationError(f"Table '{table_name}' is not in the metadata {sorted(tables)}.")
        return tables[table_name]

    return as_dict


def get_column_kinds(
    data: pd.DataFrame | None = None, metadata: Any = None, table_name: str | None = None
) -> dict[str, str]:
    """Classify every column as ``numerical``, ``datetime``, ``categorical``, ``id`` or ``other``.

    With SDV metadata, the ``sdtype`` decides: ``numerical`` and ``datetime`` as they are,
    ``categorical`` and ``boolean`` as categorical, the primary and alternate keys and ``id``
    columns as ``id``, every other sdtype (PII such as ``email``) as ``other``. Without metadata
    the pandas dtypes of ``data`` decide.

    Args:
        data (pandas.DataFrame or None):
            The data, used when ``metadata`` is None.
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata (single table, or ``table_name`` of a multi-table one), or its dict.
        table_name (str or None):
            The table to read from multi-table metadata.

    Returns:
        dict[str, str]:
            The kind of every column, in column order.

    Raises:
        EvaluationError:
            If neither ``data`` nor ``metadata`` is given.
    """
    if metadata is None:
        if data is None:
            raise EvaluationError('get_column_kinds needs data or metadata.')

        kinds = {}
        for column in data.columns:
            series = data[column]
            if pd.api.types.is_bool_dtype(series):
                kinds[column] = 'categorical'
            elif pd.api.types.is_numeric_dtype(series):
                kinds[column] = 'numerical'
            elif pd.api.types.is_datetime64_any_dtype(series):
                kinds[column] = 'datetime'
            else:
                kinds[column] = 'categorical'
        return kinds

    table = _single_table_dict(metadata, table_name)
    keys = set()
    primary_key = table.get('primary_key')
    if isinstance(primary_key, str):
        keys.add(primary_key)
    elif primary_key:
        keys.update(primary_key)
    keys.update(table.get('alternate_keys') or [])

    kinds = {}
    for column, column_metadata in table.get('columns', {}).items():
        sdtype = column_metadata.get('sdtype')
        if column in keys or sdtype == 'id':
            kinds[column] = 'id'
        elif sdtype in ('numerical', 'datetime'):
            kinds[column] = sdtype
        elif sdtype in ('categorical', 'boolean'):
            kinds[column] = 'categorical'
        else:
            kinds[column] = 'other'
    return kinds


def get_datetime_formats(metadata: Any, table_name: str | None = None) -> dict[str, str | None]:
    """Return the ``datetime_format`` of every datetime column of the metadata (None if unset).

    Args:
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata or its dict.
        table_name (str or None):
            The table to read from multi-table metadata.

    Returns:
        dict[str, str or None]:
            The format of each datetime column.
    """
    if metadata is None:
        return {}

    table = _single_table_dict(metadata, table_name)
    return {
        column: column_metadata.get('datetime_format')
        for column, column_metadata in table.get('columns', {}).items()
        if column_metadata.get('sdtype') == 'datetime'
    }


def category_key(value: Any) -> Any:
    """Return a canonical, hashable form of a categorical value.

    Missing values (None, NaN, NaT, pd.NA) become :data:`MISSING`, whole floats become ints (so
    ``1.0`` read from a CSV with gaps equals ``1`` written by a model), numpy scalars become
    Python scalars and everything else becomes its string.

    Args:
        value:
            A value.

    Returns:
        The canonical value.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        return int(value) if float(value).is_integer() else float(value)
    return str(value)


def numeric_values(series: pd.Series, kind: str = 'numerical', datetime_format: str | None = None
                   ) -> np.ndarray:
    """Convert a column to floats (datetimes to seconds since the epoch); unusable values to NaN.

    Args:
        series (pandas.Series):
            The column.
        kind (str):
            ``'numerical'`` or ``'datetime'``.
        datetime_format (str or None):
            The strftime format of datetime strings, when known.

    Returns:
        numpy.ndarray:
            Float values, NaN where missing or unparseable.
    """
    if kind == 'datetime':
        if pd.api.types.is_datetime64_any_dtype(series):
            parsed = series
        else:
            parsed = pd.to_datetime(series, format=datetime_format, errors='coerce')
        if getattr(parsed.dt, 'tz', None) is not None:
            parsed = parsed.dt.tz_convert('UTC').dt.tz_localize(None)
        raw = parsed.to_numpy(dtype='datetime64[ns]')
        values = raw.astype('int64').astype(float) / 1e9
        values[np.isnat(raw)] = np.nan
        return values

    values = pd.to_numeric(series, errors='coerce')
    return pd.Series(values, dtype='float64').to_numpy(dtype=float, na_value=np.nan)


def _category_series(series: pd.Series) -> pd.Series:
    return series.astype(object).map(category_key)


def _smoothed(counts: np.ndarray, smoothing: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=float) + smoothing
    total = counts.sum()
    return counts / total if total > 0 else np.full(counts.shape, 1.0 / max(len(counts), 1))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    with np.errstate(divide='ignore'):
        return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (in [0, 1])."""
    mixture = 0.5 * (p + q)
    value = 0.5 * _kl(p, mixture) + 0.5 * _kl(q, mixture)
    return float(min(1.0, max(0.0, value / math.log(2))))


def _cramers_v(codes_a: np.ndarray, codes_b: np.ndarray) -> float:
    """Bias-corrected Cramer's V (Bergsma, 2013) of two integer-coded columns."""
    size = len(codes_a)
    if size < 2:
        return 0.0
    _, a = np.unique(codes_a, return_inverse=True)
    _, b = np.unique(codes_b, return_inverse=True)
    rows, cols = a.max() + 1, b.max() + 1
    if rows < 2 or cols < 2:
        return 0.0
    table = np.bincount(a * cols + b, minlength=rows * cols).reshape(rows, cols).astype(float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / size
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    phi2 = chi2 / size
    phi2_corrected = max(0.0, phi2 - (rows - 1) * (cols - 1) / (size - 1))
    rows_corrected = rows - (rows - 1) ** 2 / (size - 1)
    cols_corrected = cols - (cols - 1) ** 2 / (size - 1)
    denominator = min(rows_corrected - 1, cols_corrected - 1)
    if denominator <= 0:
        return 0.0
    return float(min(1.0, math.sqrt(phi2_corrected / denominator)))


def _to_builtin(value: Any) -> Any:
    """Make numpy scalars and containers JSON-serializable."""
    if isinstance(value, dict):
        return {str(key): _to_builtin(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(item) for item in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f'{value:,.0f}'
        return f'{value:.{digits}g}'
    return str(value)


# --------------------------------------------------------------------------------------------
# Near-copy index
# --------------------------------------------------------------------------------------------
class NearCopyIndex:
    """Nearest real row of each synthetic row, by a normalised mixed-type (Gower) distance.

    The distance between two rows is the mean over the analyzed columns of a per-column
    mismatch in [0, 1]: ``|x - y| / range`` for numeric and datetime columns (capped at 1;
    missing against present counts 1), and 0 or 1 for categorical columns (missing is a
    category of its own). A synthetic row is an **exact copy** when its distance to some real
    row is 0, and a **near copy** when it is at most :attr:`threshold`, the ``quantile`` of
    the distances from real rows to their nearest *other* real row (estimated on up to
    ``max_reference_rows`` real rows). With the default ``quantile=0.01``, about 1% of fresh
    rows drawn from the real distribution itself would be flagged: a row closer to a real
    record than 99% of real records are to each other is treated as a copy.

    The index keeps the real rows in a compact encoded form (category codes and numeric
    values, no column names or labels), because the check needs them. Whoever holds the index
    (for example a saved synthesizer) holds that encoded copy of the real data.

    Args:
        real (pandas.DataFrame):
            The real rows.
        kinds (dict[str, str]):
            The kind of every column (see :func:`get_column_kinds`); only ``numerical``,
            ``datetime`` and ``categorical`` columns are compared.
        datetime_formats (dict or None):
            ``datetime_format`` of the datetime columns.
        quantile (float):
            The quantile of real-to-real nearest-neighbour distances used as threshold.
            Defaults to 0.01.
        max_reference_rows (int):
            Real rows used to estimate the threshold. Defaults to 1000.
        seed (int):
            Seed of that subsample. Defaults to 0.
    """

    def __init__(
        self,
        real: pd.DataFrame,
        kinds: dict[str, str],
        datetime_formats: dict[str, str | None] | None = None,
        quantile: float = 0.01,
        max_reference_rows: int = 1000,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= quantile <= 1.0:
            raise EvaluationError(
                f"The 'quantile' parameter must be between 0 and 1. Got {quantile!r} instead."
            )

        self.datetime_formats = dict(datetime_formats or {})
        self.quantile = quantile
        self.numeric_columns = [c for c, k in kinds.items() if k in NUMERIC_KINDS and c in real]
        self.categorical_columns = [c for c, k in kinds.items() if k == 'categorical' and c in real]
        self._kinds = {c: kinds[c] for c in self.numeric_columns + self.categorical_columns}
        if not self._kinds:
            raise EvaluationError('NearCopyIndex needs at least one numeric or categorical column.')

        self.num_rows = len(real)
        numeric = self._numeric_matrix(real)
        self._low = np.nanmin(numeric, axis=0) if len(real) and numeric.shape[1] else np.zeros(0)
        high = np.nanmax(numeric, axis=0) if len(real) and numeric.shape[1] else np.zeros(0)
        span = np.nan_to_num(high - self._low, nan=0.0)
        self._span = np.where(span > 0, span, 1.0)
        self._low = np.nan_to_num(self._low, nan=0.0)
        self._categories = {}
        for column in self.categorical_columns:
            keys = _category_series(real[column])
            self._categories[column] = {key: code for code, key in enumerate(pd.unique(keys))}

        self._real_numeric = self._scale(numeric)
        self._real_codes = self._codes(real)
        self.threshold = self._estimate_threshold(max_reference_rows, seed)

    def _numeric_matrix(self, data: pd.DataFrame) -> np.ndarray:
        if not self.numeric_columns:
            return np.zeros((len(data), 0))
        return np.column_stack([
            numeric_values(data[c], self._kinds[c], self.datetime_formats.get(c))
            if c in data else np.full(len(data), np.nan)
            for c in self.numeric_columns
        ])

    def _scale(self, numeric: np.ndarray) -> np.ndarray:
        return ((numeric - self._low) / self._span).astype(np.float32)

    def _codes(self, data: pd.DataFrame) -> np.ndarray:
        if not self.categorical_columns:
            return np.zeros((len(data), 0), dtype=np.int32)
        columns = []
        for column in self.categorical_columns:
            mapping = self._categories[column]
            unknown = len(mapping)  # a category the real data never had matches no real row
            if column in data:
                keys = _category_series(data[column])
                columns.append(keys.map(lambda key, m=mapping, u=unknown: m.get(key, u)).to_numpy())
            else:
                columns.append(np.full(len(data), unknown))
        return np.column_stack(columns).astype(np.int32)

    def _nearest(self, numeric: np.ndarray, codes: np.ndarray, k: int = 1) -> np.ndarray:
        """Distances from each query row to its ``k`` nearest real rows (sorted), shape (q, k)."""
        num_queries = len(numeric)
        num_columns = numeric.shape[1] + codes.shape[1]
        result = np.zeros((num_queries, k))
        if num_queries == 0 or self.num_rows == 0:
            return np.full((num_queries, k), np.inf)
        chunk = max(1, 4_000_000 // max(self.num_rows, 1))
        real_numeric, real_codes = self._real_numeric, self._real_codes
        real_missing = np.isnan(real_numeric)
        for start in range(0, num_queries, chunk):
            stop = min(num_queries, start + chunk)
            total = np.zeros((stop - start, self.num_rows), dtype=np.float32)
            for j in range(numeric.shape[1]):
                query = numeric[start:stop, j][:, None]
                diff = np.minimum(np.abs(query - real_numeric[:, j][None, :]), 1.0)
                query_missing = np.isnan(query)
                either = query_missing | real_missing[:, j][None, :]
                both = query_missing & real_missing[:, j][None, :]
                diff = np.where(either, np.where(both, 0.0, 1.0), diff)
                total += diff.astype(np.float32)
            for j in range(codes.shape[1]):
                total += (codes[start:stop, j][:, None] != real_codes[:, j][None, :])
            if k >= self.num_rows:
                part = np.sort(total, axis=1)[:, :k]
            else:
                part = np.partition(total, k - 1, axis=1)[:, :k]
                part.sort(axis=1)
            if part.shape[1] < k:
                part = np.pad(part, ((0, 0), (0, k - part.shape[1])), constant_values=np.inf)
            result[start:stop] = part / num_columns
        return result

    def _estimate_threshold(self, max_reference_rows: int, seed: int) -> float:
        if self.num_rows < 2:
            return 0.0
        rng = np.random.default_rng(seed)
        size = min(max_reference_rows, self.num_rows)
        rows = np.sort(rng.choice(self.num_rows, size=size, replace=False))
        # The nearest row of a real row is itself (distance 0); the second is its nearest other.
        nearest = self._nearest(self._real_numeric[rows], self._real_codes[rows], k=2)[:, 1]
        return float(np.quantile(nearest, self.quantile))

    def distances(self, synthetic: pd.DataFrame) -> np.ndarray:
        """Return the Gower distance of every synthetic row to its nearest real row.

        Args:
            synthetic (pandas.DataFrame):
                Rows to check (extra columns are ignored, absent ones count as mismatches).

        Returns:
            numpy.ndarray:
                One distance in [0, 1] per row.
        """
        numeric = self._scale(self._numeric_matrix(synthetic))
        return self._nearest(numeric, self._codes(synthetic), k=1)[:, 0]

    def flag(self, synthetic: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flag the synthetic rows that copy a real row.

        Args:
            synthetic (pandas.DataFrame):
                Rows to check.

        Returns:
            tuple:
                ``(exact, near, distances)``: boolean masks of exact copies and of near copies
                (exact copies included), and the distances.
        """
        distances = self.distances(synthetic)
        exact = distances <= _EXACT_TOLERANCE
        near = distances <= max(self.threshold, _EXACT_TOLERANCE)
        return exact, near, distances


# --------------------------------------------------------------------------------------------
# Reference profile and report
# --------------------------------------------------------------------------------------------
@dataclass
class ReferenceProfile:
    """The real side of the analysis, computed once and reused against many synthetic samples.

    Args:
        kinds (dict[str, str]):
            The kind of every column.
        num_rows (int):
            Real rows profiled.
        numeric (dict):
            Per numeric column: sorted values, range, moments, bin edges and bin frequencies.
        categorical (dict):
            Per categorical column: category counts (canonical keys, most frequent first).
        pearson (pandas.DataFrame or None):
            Real Pearson correlations of the numeric columns.
        association (pandas.DataFrame or None):
            Real Cramer's V of the categorical columns.
        near_copy_index (NearCopyIndex or None):
            The privacy index, when privacy checks are on.
    """

    kinds: dict[str, str]
    num_rows: int
    numeric: dict[str, dict[str, Any]] = field(default_factory=dict)
    categorical: dict[str, dict[str, Any]] = field(default_factory=dict)
    pearson: pd.DataFrame | None = None
    association: pd.DataFrame | None = None
    near_copy_index: NearCopyIndex | None = None

    @property
    def columns(self) -> list[str]:
        """list[str]: The analyzed columns, in table order."""
        return [c for c in self.kinds if c in self.numeric or c in self.categorical]


@dataclass
class AnalysisReport:
    """What the statistical analyzer found: per column, joint, privacy, and one score.

    Args:
        columns (list[dict]):
            One dict of diagnostics per analyzed column (see :meth:`to_frame`).
        correlation (dict):
            ``numeric_similarity``, ``categorical_similarity`` (None when fewer than two such
            columns), ``largest_gaps`` and ``rigid_pairs``.
        privacy (dict):
            ``checked``, ``num_exact_copies``, ``num_near_copies`` (exact ones included),
            ``near_copy_share`` and ``threshold``.
        num_real_rows (int):
            Real rows compared.
        num_synthetic_rows (int):
            Synthetic rows compared.
        score (float):
            One number in [0, 1], higher is better (see :meth:`StatisticalAnalyzer.analyze`).
        exact_copy_mask (numpy.ndarray or None):
            Per synthetic row, whether it copies a real row exactly.
        near_copy_mask (numpy.ndarray or None):
            Per synthetic row, whether it is a near copy (exact copies included).
        nearest_distances (numpy.ndarray or None):
            Per synthetic row, the Gower distance to its nearest real row.
    """

    columns: list[dict[str, Any]]
    correlation: dict[str, Any]
    privacy: dict[str, Any]
    num_real_rows: int
    num_synthetic_rows: int
    score: float
    exact_copy_mask: np.ndarray | None = None
    near_copy_mask: np.ndarray | None = None
    nearest_distances: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """Return the per-column diagnostics as a DataFrame, one row per column.

        Returns:
            pandas.DataFrame:
                Columns ``column``, ``kind``, ``score``, ``ks_statistic``, ``chi2_statistic``,
                ``chi2_pvalue``, ``kl_divergence``, ``js_divergence``, ``tvd``,
                ``category_coverage``, ``range_coverage``, ``out_of_range_share``,
                ``real_missing_share``, ``synthetic_missing_share`` (NaN where not applicable).
        """
        fields = [
            'column', 'kind', 'score', 'ks_statistic', 'chi2_statistic', 'chi2_pvalue',
            'kl_divergence', 'js_divergence', 'tvd', 'category_coverage', 'range_coverage',
            'out_of_range_share', 'real_missing_share', 'synthetic_missing_share',
        ]
        rows = [{name: entry.get(name, np.nan) for name in fields} for entry in self.columns]
        return pd.DataFrame(rows, columns=fields)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict of the report (masks left out, counts kept).

        Returns:
            dict:
                ``score``, ``num_real_rows``, ``num_synthetic_rows``, ``columns``,
                ``correlation`` and ``privacy``.
        """
        return _to_builtin({
            'score': self.score,
            'num_real_rows': self.num_real_rows,
            'num_synthetic_rows': self.num_synthetic_rows,
            'columns': self.columns,
            'correlation': self.correlation,
            'privacy': self.privacy,
        })

    def _column_line(self, entry: dict[str, Any]) -> str:
        name, kind = entry['column'], entry['kind']
        if kind in NUMERIC_KINDS:
            parts = [
                f"KS {_fmt(entry['ks_statistic'], 2)}",
                f"JS {_fmt(entry['js_divergence'], 2)}",
                f"range coverage {_fmt(entry['range_coverage'], 2)}",
                f"mean {_fmt(entry['synthetic_mean'])} vs real {_fmt(entry['real_mean'])}",
                f"std {_fmt(entry['synthetic_std'])} vs real {_fmt(entry['real_std'])}",
                f"range [{_fmt(entry['synthetic_min'])}, {_fmt(entry['synthetic_max'])}] vs real "
                f"[{_fmt(entry['real_min'])}, {_fmt(entry['real_max'])}]",
            ]
            if entry.get('out_of_range_share'):
                parts.append(f"{entry['out_of_range_share']:.0%} outside the real range")
        else:
            parts = [
                f"chi-squared p {_fmt(entry['chi2_pvalue'], 2)}",
                f"JS {_fmt(entry['js_divergence'], 2)}",
                f"coverage {entry['num_covered']}/{entry['num_real_categories']}",
            ]
            deviations = [
                f"{d['category']} {d['synthetic_share']:.0%} vs real {d['real_share']:.0%}"
                for d in entry.get('deviations', [])[:2]
            ]
            if deviations:
                parts.append('off: ' + ', '.join(deviations))
            if entry.get('missing_categories'):
                shown = ', '.join(str(c) for c in entry['missing_categories'][:4])
                parts.append(f'absent: {shown}')
        return f"- {name} ({kind}, score {entry['score']:.2f}): " + '; '.join(parts)

    def worst_columns_text(self, num_columns: int = 4) -> str:
        """Return the diagnostics of the ``num_columns`` worst columns, one line each.

        The short form of :meth:`summary_text`, for a prompt that must stay small.

        Args:
            num_columns (int):
                How many columns, worst score first. Defaults to 4.

        Returns:
            str:
                The lines (empty when no column was analyzed).
        """
        worst = sorted(self.columns, key=lambda entry: entry['score'])[: max(0, num_columns)]
        return '\n'.join(self._column_line(entry) for entry in worst)

    def summary_text(self, max_lines: int = 30) -> str:
        """Return a compact text summary for an LLM prompt, worst columns first.

        Args:
            max_lines (int):
                The most lines returned. Defaults to 30.

        Returns:
            str:
                The summary.
        """
        lines = [
            f'Rows: real {self.num_real_rows}, synthetic {self.num_synthetic_rows}. '
            f'Overall similarity score {self.score:.3f} (1 = indistinguishable).',
        ]
        correlation = self.correlation
        if correlation.get('numeric_similarity') is not None or correlation.get(
            'categorical_similarity'
        ) is not None:
            line = (
                f"Correlation similarity: numeric {_fmt(correlation.get('numeric_similarity'))}, "
                f"categorical {_fmt(correlation.get('categorical_similarity'))}."
            )
            gaps = correlation.get('largest_gaps') or []
            if gaps:
                gap = gaps[0]
                line += (
                    f" Largest gap: {gap['pair'][0]} ~ {gap['pair'][1]} (real {gap['real']:.2f}, "
                    f"synthetic {gap['synthetic']:.2f})."
                )
            lines.append(line)
        privacy = self.privacy
        if privacy.get('checked'):
            lines.append(
                f"Privacy: {privacy['num_exact_copies']} exact copies and "
                f"{privacy['num_near_copies'] - privacy['num_exact_copies']} near copies of real "
                f"rows (distance threshold {privacy['threshold']:.3g})."
            )
        if correlation.get('rigid_pairs'):
            pairs = ', '.join(f'{a} ~ {b}' for a, b in correlation['rigid_pairs'][:3])
            lines.append(f'Suspiciously rigid dependencies (possible copying): {pairs}.')
        lines.append('Columns, worst first:')
        for entry in sorted(self.columns, key=lambda e: e['score']):
            lines.append(self._column_line(entry))
        if len(lines) > max_lines:
            lines = lines[: max(1, max_lines - 1)] + [
                f'... {len(lines) - max_lines + 1} more lines omitted.'
            ]
        return '\n'.join(lines)


# --------------------------------------------------------------------------------------------
# The analyzer
# --------------------------------------------------------------------------------------------
class StatisticalAnalyzer:
    """Compare synthetic rows with real rows, column by column, jointly and for privacy.

    Args:
        metadata (sdv.metadata.Metadata, dict or None):
            SDV metadata of the table; None to infer column kinds from the dtypes.
        table_name (str or None):
            The table, for multi-table metadata.
        num_bins (int):
            Quantile bins of numeric columns for KL and JS divergence. Defaults to 10.
        smoothing (float):
            Pseudo-count added to every bin or category before KL, JS and chi-squared, so no
            term is undefined. Defaults to 0.5.
        check_privacy (bool):
            Whether to flag exact and near copies of real rows. Defaults to True.
        near_copy_quantile (float):
            See :class:`NearCopyIndex`. Defaults to 0.01.
        max_reference_rows (int):
            Real rows used to estimate the near-copy threshold. Defaults to 1000.
        max_association_categories (int):
            Categorical columns with more categories are left out of the association matrix.
            Defaults to 100.
        seed (int):
            Seed of the subsampling. Defaults to 0.
    """

    def __init__(
        self,
        metadata: Any = None,
        table_name: str | None = None,
        num_bins: int = 10,
        smoothing: float = 0.5,
        check_privacy: bool = True,
        near_copy_quantile: float = 0.01,
        max_reference_rows: int = 1000,
        max_association_categories: int = 100,
        seed: int = 0,
    ) -> None:
        self.metadata = metadata
        self.table_name = table_name
        self.num_bins = num_bins
        self.smoothing = smoothing
        self.check_privacy = check_privacy
        self.near_copy_quantile = near_copy_quantile
        self.max_reference_rows = max_reference_rows
        self.max_association_categories = max_association_categories
        self.seed = seed

    # -- real side ---------------------------------------------------------------------------
    def profile(self, real: pd.DataFrame) -> ReferenceProfile:
        """Compute everything the analysis needs from the real rows.

        Args:
            real (pandas.DataFrame):
                The real rows.

        Returns:
            ReferenceProfile:
                The profile, to pass to :meth:`analyze` instead of the real rows.

        Raises:
            EvaluationError:
                If ``real`` is empty or has none of the analyzed columns.
        """
        if len(real) == 0:
            raise EvaluationError('Cannot profile an empty real table.')

        kinds = get_column_kinds(real, self.metadata, self.table_name)
        formats = get_datetime_formats(self.metadata, self.table_name)
        kinds = {c: k for c, k in kinds.items() if c in real.columns}
        profile = ReferenceProfile(kinds=kinds, num_rows=len(real))
        numeric_frame = {}
        codes_frame = {}
        for column, kind in kinds.items():
            if kind in NUMERIC_KINDS:
                values = numeric_values(real[column], kind, formats.get(column))
                present = np.sort(values[~np.isnan(values)])
                numeric_frame[column] = values
                info = {
                    'kind': kind,
                    'datetime_format': formats.get(column),
                    'values': present,
                    'missing_share': float(np.isnan(values).mean()),
                }
                if present.size:
                    edges = quantile_edges(present, self.num_bins)
                    info.update(
                        min=float(present[0]), max=float(present[-1]),
                        mean=float(present.mean()), std=float(present.std()), edges=edges,
                    )
                    info['frequencies'] = self._bin_counts(values, edges)
                else:
                    info.update(min=np.nan, max=np.nan, mean=np.nan, std=np.nan, edges=None)
                    info['frequencies'] = np.array([0.0, float(len(values))])
                profile.numeric[column] = info
            elif kind == 'categorical':
                keys = _category_series(real[column])
                counts = keys.value_counts(sort=True)
                profile.categorical[column] = {
                    'counts': dict(zip(counts.index.tolist(), counts.to_numpy().tolist())),
                    'missing_share': float((keys == MISSING).mean()),
                }
                if len(counts) <= self.max_association_categories:
                    codes_frame[column] = pd.factorize(keys)[0]

        profile.pearson = self._pearson(pd.DataFrame(numeric_frame))
        profile.association = self._association(codes_frame)
        if self.check_privacy and (profile.numeric or profile.categorical):
            profile.near_copy_index = NearCopyIndex(
                real, kinds, formats, quantile=self.near_copy_quantile,
                max_reference_rows=self.max_reference_rows, seed=self.seed,
            )
        return profile

    @staticmethod
    def _bin_counts(values: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
        """Counts per bin, the last entry counting missing values."""
        present = ~np.isnan(values)
        if edges is None or len(edges) < 2:
            return np.array([float(present.sum()), float((~present).sum())])
        codes = bin_codes(values, edges)
        counts = np.bincount(codes[codes >= 0], minlength=len(edges) - 1).astype(float)
        return np.append(counts, float((codes < 0).sum()))

    @staticmethod
    def _pearson(frame: pd.DataFrame) -> pd.DataFrame | None:
        if frame.shape[1] < 2:
            return None
        usable = [c for c in frame.columns if frame[c].nunique(dropna=True) > 1]
        if len(usable) < 2:
            return None
        return frame[usable].corr(method='pearson').fillna(0.0)

    @staticmethod
    def _association(codes: dict[str, np.ndarray]) -> pd.DataFrame | None:
        columns = list(codes)
        if len(columns) < 2:
            return None
        matrix = pd.DataFrame(np.eye(len(columns)), index=columns, columns=columns)
        for i, first in enumerate(columns):
            for second in columns[i + 1:]:
                value = _cramers_v(codes[first], codes[second])
                matrix.loc[first, second] = matrix.loc[second, first] = value
        return matrix

    # -- comparison --------------------------------------------------------------------------
    def _numeric_entry(self, column: str, info: dict[str, Any], synthetic: pd.DataFrame
                       ) -> dict[str, Any]:
        values = (
            numeric_values(synthetic[column], info['kind'], info['datetime_format'])
            if column in synthetic else np.full(len(synthetic), np.nan)
        )
        present = values[~np.isnan(values)]
        real_values = info['values']
        if present.size and real_values.size:
            ks = float(stats.ks_2samp(real_values, present).statistic)
        else:
            ks = 0.0 if present.size == real_values.size else 1.0

        real_counts = info['frequencies']
        synthetic_counts = self._bin_counts(values, info['edges'])
        p = _smoothed(real_counts, self.smoothing)
        q = _smoothed(synthetic_counts, self.smoothing)
        low, high = info['min'], info['max']
        if present.size and real_values.size:
            synthetic_low, synthetic_high = float(present.min()), float(present.max())
            if high > low:
                overlap = min(high, synthetic_high) - max(low, synthetic_low)
                range_coverage = float(min(1.0, max(0.0, overlap / (high - low))))
            else:
                range_coverage = 1.0 if synthetic_low <= low <= synthetic_high else 0.0
            out_of_range = float(np.mean((present < low) | (present > high)))
        else:
            synthetic_low = synthetic_high = np.nan
            range_coverage = 0.0
            out_of_range = 0.0

        js = _js(p, q)
        return {
            'column': column,
            'kind': info['kind'],
            'score': float(np.mean([1.0 - ks, 1.0 - js, range_coverage])),
            'ks_statistic': ks,
            'kl_divergence': _kl(p, q),
            'js_divergence': js,
            'range_coverage': range_coverage,
            'out_of_range_share': out_of_range,
            'real_min': low, 'real_max': high,
            'synthetic_min': synthetic_low, 'synthetic_max': synthetic_high,
            'real_mean': info['mean'], 'real_std': info['std'],
            'synthetic_mean': float(present.mean()) if present.size else np.nan,
            'synthetic_std': float(present.std()) if present.size else np.nan,
            'real_missing_share': info['missing_share'],
            'synthetic_missing_share': float(np.isnan(values).mean()) if len(values) else np.nan,
        }

    def _categorical_entry(self, column: str, info: dict[str, Any], synthetic: pd.DataFrame
                           ) -> dict[str, Any]:
        keys = (
            _category_series(synthetic[column]) if column in synthetic
            else pd.Series([MISSING] * len(synthetic), dtype=object)
        )
        synthetic_counts = Counter(keys.tolist())
        real_counts = info['counts']
        support = list(real_counts) + [k for k in synthetic_counts if k not in real_counts]
        real_vector = np.array([real_counts.get(k, 0) for k in support], dtype=float)
        synthetic_vector = np.array([synthetic_counts.get(k, 0) for k in support], dtype=float)
        num_synthetic = synthetic_vector.sum()
        p = _smoothed(real_vector, self.smoothing)
        q = _smoothed(synthetic_vector, self.smoothing)
        if num_synthetic > 0:
            expected = p * num_synthetic
            with np.errstate(divide='ignore', invalid='ignore'):
                chi2 = float(np.sum((synthetic_vector - expected) ** 2 / expected))
            degrees = len(support) - 1
            pvalue = float(stats.chi2.sf(chi2, degrees)) if degrees > 0 else 1.0
            real_share = real_vector / real_vector.sum()
            synthetic_share = synthetic_vector / num_synthetic
            tvd = float(0.5 * np.abs(real_share - synthetic_share).sum())
        else:
            chi2, pvalue, tvd = np.nan, 0.0, 1.0
            real_share = real_vector / real_vector.sum()
            synthetic_share = np.zeros_like(real_share)

        real_categories = [k for k in real_counts if k != MISSING]
        covered = [k for k in real_categories if synthetic_counts.get(k, 0) > 0]
        coverage = len(covered) / len(real_categories) if real_categories else 1.0
        order = np.argsort(-np.abs(synthetic_share - real_share), kind='stable')
        deviations = [
            {
                'category': support[i],
                'real_share': float(real_share[i]),
                'synthetic_share': float(synthetic_share[i]),
            }
            for i in order[:3] if abs(synthetic_share[i] - real_share[i]) > 0
        ]
        js = _js(p, q)
        return {
            'column': column,
            'kind': 'categorical',
            'score': float(np.mean([1.0 - tvd, 1.0 - js, coverage])),
            'chi2_statistic': chi2,
            'chi2_pvalue': pvalue,
            'kl_divergence': _kl(p, q),
            'js_divergence': js,
            'tvd': tvd,
            'category_coverage': coverage,
            'num_real_categories': len(real_categories),
            'num_covered': len(covered),
            'missing_categories': [k for k in real_categories if synthetic_counts.get(k, 0) == 0],
            'unseen_categories': [k for k in synthetic_counts if k not in real_counts],
            'deviations': deviations,
            'real_missing_share': info['missing_share'],
            'synthetic_missing_share': (
                float(synthetic_counts.get(MISSING, 0) / num_synthetic) if num_synthetic else np.nan
            ),
        }

    @staticmethod
    def _compare_matrices(real: pd.DataFrame | None, synthetic: pd.DataFrame | None, scale: float
                          ) -> tuple[float | None, list[dict[str, Any]], list[tuple[str, str]]]:
        if real is None or synthetic is None:
            return None, [], []
        columns = list(real.columns)
        gaps, rigid = [], []
        for i, first in enumerate(columns):
            for second in columns[i + 1:]:
                real_value = float(real.loc[first, second])
                synthetic_value = float(synthetic.loc[first, second])
                gaps.append({
                    'pair': (first, second), 'real': real_value, 'synthetic': synthetic_value,
                    'gap': abs(real_value - synthetic_value),
                })
                if abs(synthetic_value) >= _RIGID_SYNTHETIC and abs(real_value) < _RIGID_REAL:
                    rigid.append((first, second))
        if not gaps:
            return None, [], []
        similarity = 1.0 - float(np.mean([g['gap'] for g in gaps])) / scale
        gaps.sort(key=lambda g: -g['gap'])
        return similarity, gaps[:5], rigid

    def _correlation(self, profile: ReferenceProfile, synthetic: pd.DataFrame) -> dict[str, Any]:
        numeric_similarity, numeric_gaps, numeric_rigid = None, [], []
        if profile.pearson is not None and len(synthetic) > 1:
            frame = pd.DataFrame({
                c: numeric_values(
                    synthetic[c], profile.numeric[c]['kind'], profile.numeric[c]['datetime_format']
                ) if c in synthetic else np.full(len(synthetic), np.nan)
                for c in profile.pearson.columns
            })
            synthetic_matrix = frame.corr(method='pearson').fillna(0.0)
            numeric_similarity, numeric_gaps, numeric_rigid = self._compare_matrices(
                profile.pearson, synthetic_matrix, scale=2.0
            )

        categorical_similarity, categorical_gaps, categorical_rigid = None, [], []
        if profile.association is not None and len(synthetic) > 1:
            codes = {
                c: pd.factorize(
                    _category_series(synthetic[c]) if c in synthetic
                    else pd.Series([MISSING] * len(synthetic))
                )[0]
                for c in profile.association.columns
            }
            synthetic_matrix = self._association(codes)
            categorical_similarity, categorical_gaps, categorical_rigid = self._compare_matrices(
                profile.association, synthetic_matrix, scale=1.0
            )

        gaps = sorted(numeric_gaps + categorical_gaps, key=lambda g: -g['gap'])[:5]
        return {
            'numeric_similarity': numeric_similarity,
            'categorical_similarity': categorical_similarity,
            'largest_gaps': gaps,
            'rigid_pairs': numeric_rigid + categorical_rigid,
        }

    def analyze(self, real: pd.DataFrame | ReferenceProfile, synthetic: pd.DataFrame
                ) -> AnalysisReport:
        """Compare synthetic rows with the real rows.

        The score is ``0.75 * mean(column scores) + 0.25 * mean(correlation similarities)``
        (the column mean alone when no correlation can be computed), multiplied by
        ``1 - near_copy_share`` so copied rows earn nothing. A numeric column scores
        ``mean(1 - KS, 1 - JS, range coverage)``, a categorical one
        ``mean(1 - TVD, 1 - JS, category coverage)``. Identical tables score 1 before the
        copy penalty.

        Args:
            real (pandas.DataFrame or ReferenceProfile):
                The real rows, or their profile from :meth:`profile`.
            synthetic (pandas.DataFrame):
                The synthetic rows.

        Returns:
            AnalysisReport:
                The diagnostics.
        """
        profile = real if isinstance(real, ReferenceProfile) else self.profile(real)
        entries = []
        for column in profile.columns:
            if column in profile.numeric:
                entries.append(self._numeric_entry(column, profile.numeric[column], synthetic))
            else:
                entries.append(
                    self._categorical_entry(column, profile.categorical[column], synthetic)
                )

        correlation = self._correlation(profile, synthetic)
        privacy: dict[str, Any] = {'checked': False}
        exact = near = distances = None
        if profile.near_copy_index is not None and len(synthetic):
            exact, near, distances = profile.near_copy_index.flag(synthetic)
            privacy = {
                'checked': True,
                'num_exact_copies': int(exact.sum()),
                'num_near_copies': int(near.sum()),
                'near_copy_share': float(near.mean()),
                'threshold': profile.near_copy_index.threshold,
            }

        if len(synthetic) == 0 or not entries:
            score = 0.0
        else:
            score = float(np.mean([entry['score'] for entry in entries]))
            similarities = [
                value for value in (
                    correlation['numeric_similarity'], correlation['categorical_similarity']
                ) if value is not None
            ]
            if similarities:
                score = 0.75 * score + 0.25 * float(np.mean(similarities))
            if privacy.get('checked'):
                score *= 1.0 - privacy['near_copy_share']

        return AnalysisReport(
            columns=entries,
            correlation=correlation,
            privacy=privacy,
            num_real_rows=profile.num_rows,
            num_synthetic_rows=len(synthetic),
            score=float(score),
            exact_copy_mask=exact,
            near_copy_mask=near,
            nearest_distances=distances,
        )
