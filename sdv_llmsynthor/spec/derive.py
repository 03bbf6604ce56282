"""Derive a macro-statistics spec from real rows, the way the LLMSynthor paper does.

Appendix B.1 of the paper: each continuous column gets quantile-based main bins (6 by
default, so that each holds about the same number of rows) split into uniform sub-bins (8 by
default); marginals are tabulated at sub-bin resolution, joint contingency tables over main
bins for chosen column groups. Categorical, boolean and small discrete numeric columns get
categorical marginals.

Conventions of the derived spec:

- A statistic is computed over the rows where all its columns are present, and its
  proportions sum to 1; the share of missing values is the column's ``missing_proportion``.
- Proportions are rounded to 6 decimals by largest remainders, so they still sum to exactly 1.
- Except for a derived column some parents have no value of (``min``, ``max`` or ``mean`` of
  a parent without children): its statistics are partial count tables over the parents that
  have one, so their shares are of all parents and the rest is left to those without.
- Id columns (the primary key, foreign keys, any ``id`` sdtype) and PII sdtypes are skipped.

The rows are only read: nothing of them is kept beyond the aggregates in the returned spec.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.model import (
    Cell,
    ColumnSpec,
    DerivedColumnSpec,
    MacroSpec,
    RelationshipSpec,
    StatisticSpec,
    TableSpec,
    child_count_column,
)
from sdv_llmsynthor.spec.resolve import (
    bin_index,
    column_kind,
    datetimes_to_seconds,
    edge_to_float,
    fine_edges,
    is_integer_representation,
    metadata_to_dict,
    seconds_to_iso,
)
from sdv_llmsynthor.spec.schema import json_path
from sdv_llmsynthor.spec.validation import bin_edge_problems

#: Numeric columns holding integers with at most this many distinct values are discrete.
MAX_DISCRETE_VALUES = 20
#: Automatic joints: candidate groups whose contingency table would exceed this many cells are
#: not considered.
MAX_AUTO_JOINT_CELLS = 1000
#: Automatic joints: minimum normalised mutual information of a pair.
MIN_AUTO_JOINT_SCORE = 0.02
#: Automatic joints: significance level of the G-tests (independence of a pair; conditional
#: independence of X and Y given Z before (X, Z) and (Y, Z) become the triple (X, Y, Z)).
AUTO_JOINT_P_VALUE = 0.01
_DECIMALS = 6
_SCALE = 10 ** _DECIMALS


# ---------------------------------------------------------------------- small helpers
def round_proportions(counts: Sequence[float]) -> list[float]:
    """Turn counts into proportions rounded to 6 decimals that sum to exactly 1.

    Uses largest remainders on millionths, so the rounded shares still add up to one.

    Args:
        counts (Sequence[float]):
            Non-negative counts (or weights) with a positive sum.

    Returns:
        list[float]
    """
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    if total <= 0:
        return [0.0] * len(values)
    exact = values / total * _SCALE
    units = np.floor(exact).astype(np.int64)
    remainder = int(_SCALE - units.sum())
    if remainder > 0:
        order = np.argsort(-(exact - units), kind='stable')
        units[order[:remainder]] += 1
    return [round(int(unit) / _SCALE, _DECIMALS) for unit in units]


def _plain(value: Any) -> Any:
    """Python scalar from a numpy/pandas scalar (JSON-friendly)."""
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return value


def _clean_number(value: float) -> int | float:
    value = float(value)
    if value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return float(f'{value:.12g}')


def _sorted_categories(values: Sequence[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=lambda value: (type(value).__name__, str(value)))


def _nice_edges(edges: np.ndarray, low: float, high: float, integer: bool) -> np.ndarray:
    """Round quantile edges to readable numbers that still cover ``[low, high]``."""
    edges = np.asarray(edges, dtype=float).copy()
    if integer:
        edges[1:-1] = np.round(edges[1:-1])
        edges[0] = math.floor(low)
        edges[-1] = math.ceil(high)
    else:
        span = high - low
        decimals = max(0, 3 - math.floor(math.log10(span))) if span > 0 else 6
        factor = 10.0 ** decimals
        edges[1:-1] = np.round(edges[1:-1] * factor) / factor
        edges[0] = math.floor(low * factor) / factor
        edges[-1] = math.ceil(high * factor) / factor
    edges = np.unique(edges)
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0] + 1.0])
    return edges


def _datetime_unit(span_seconds: float) -> float:
    if span_seconds >= 30 * 86400:
        return 86400.0
    if span_seconds >= 86400:
        return 3600.0
    if span_seconds >= 3600:
        return 60.0
    return 1.0


def _nice_datetime_edges(edges: np.ndarray, low: float, high: float) -> np.ndarray:
    unit = _datetime_unit(high - low)
    edges = np.asarray(edges, dtype=float).copy()
    edges[1:-1] = np.round(edges[1:-1] / unit) * unit
    edges[0] = math.floor(low / unit) * unit
    edges[-1] = math.ceil(high / unit) * unit
    edges = np.unique(edges)
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0] + unit])
    return edges


def quantile_edges(values: np.ndarray, num_bins: int, integer: bool = False,
                   datetime: bool = False) -> np.ndarray:
    """Quantile-based main bin edges, deduplicated when quantiles tie.

    Args:
        values (numpy.ndarray):
            Non-missing values (datetimes as seconds since the epoch).
        num_bins (int):
            Number of bins wanted; fewer come out when quantiles tie.
        integer (bool):
            Round inner edges to integers (and the outer ones outwards).
        datetime (bool):
            Round edges to days, hours, minutes or seconds depending on the range.

    Returns:
        numpy.ndarray:
            Strictly increasing edges covering every value.
    """
    values = np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    raw = np.quantile(values, np.linspace(0.0, 1.0, num_bins + 1))
    raw = np.unique(raw)
    if datetime:
        return _nice_datetime_edges(raw, low, high)
    return _nice_edges(raw, low, high, integer)


# ---------------------------------------------------------------------- per-column encoding
class _Encoded:
    """One column of the data prepared for tabulation."""

    def __init__(self, name: str, kind: str):
        self.name = name
        self.kind = kind  # 'categorical' | 'boolean' | 'values' | 'binned'
        self.present: np.ndarray = np.zeros(0, dtype=bool)
        self.codes: np.ndarray = np.zeros(0, dtype=np.int64)  # main resolution
        self.fine_codes: np.ndarray | None = None  # sub-bin resolution (binned only)
        self.labels: list[Any] = []  # one JSON key part per main code
        self.fine_labels: list[Any] = []
        self.column: ColumnSpec | None = None
        self.derived_bins: list | None = None
        self.derived_values: list | None = None


def _encode_discrete(name: str, series: pd.Series, kind: str, categories=None) -> _Encoded:
    encoded = _Encoded(name, kind)
    present = series.notna().to_numpy()
    values = series[present]
    if categories is None:
        categories = _sorted_categories([_plain(v) for v in pd.unique(values)])
    lookup = {_identity(category): code for code, category in enumerate(categories)}
    # Map each distinct raw value once, then all rows at once.
    raw_codes = {value: lookup.get(_identity(_plain(value)), -1) for value in pd.unique(values)}
    codes = np.full(len(series), -1, dtype=np.int64)
    codes[present] = values.map(raw_codes).to_numpy(dtype=np.int64)
    encoded.present = present
    encoded.codes = codes
    encoded.labels = list(categories)
    return encoded


def _identity(value: Any) -> tuple:
    if isinstance(value, (bool, np.bool_)):
        return ('b', bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ('n', float(value))
    return ('s', value)


def _encode_numeric(name: str, numbers: np.ndarray, integer: bool, datetime: bool,
                    num_main_bins: int, num_sub_bins: int, allow_values: bool = True,
                    edges: Sequence | None = None) -> _Encoded | None:
    present = ~np.isnan(numbers)
    observed = numbers[present]
    if len(observed) == 0:
        return None
    distinct = np.unique(observed)
    integral = bool(np.all(np.mod(distinct, 1) == 0))
    if edges is not None:
        main = np.array([edge_to_float(edge, 'datetime' if datetime else 'numerical')
                         for edge in edges], dtype=float)
        outside = (observed < main[0]) | (observed > main[-1])
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} value(s) of '{name}' fall outside the given bins "
                f'[{edges[0]}, {edges[-1]}].'
            )
        return _binned(name, numbers, present, main, num_sub_bins, datetime)
    if allow_values and not datetime and integral and len(distinct) <= MAX_DISCRETE_VALUES:
        encoded = _Encoded(name, 'values')
        encoded.present = present
        codes = np.full(len(numbers), -1, dtype=np.int64)
        codes[present] = np.searchsorted(distinct, observed)
        encoded.codes = codes
        encoded.labels = [_clean_number(v) for v in distinct]
        return encoded

    main = quantile_edges(observed, num_main_bins, integer=integer or integral,
                          datetime=datetime)
    return _binned(name, numbers, present, main, num_sub_bins, datetime)


def _binned(name: str, numbers: np.ndarray, present: np.ndarray, main: np.ndarray,
            num_sub_bins: int, datetime: bool) -> _Encoded:
    fine = fine_edges(main, num_sub_bins)
    encoded = _Encoded(name, 'binned')
    encoded.present = present
    encoded.codes = bin_index(numbers, main)
    encoded.fine_codes = bin_index(numbers, fine)
    to_json = seconds_to_iso if datetime else _clean_number
    main_json = [to_json(edge) for edge in main]
    fine_json = [to_json(edge) for edge in fine]
    encoded.labels = [[main_json[i], main_json[i + 1]] for i in range(len(main) - 1)]
    encoded.fine_labels = [[fine_json[i], fine_json[i + 1]] for i in range(len(fine) - 1)]
    encoded.derived_bins = main_json
    encoded.column = ColumnSpec(name=name, bins=main_json, sub_bins=num_sub_bins)
    return encoded


def _encode_column(name: str, series: pd.Series, column_meta: dict[str, Any],
                   num_main_bins: int, num_sub_bins: int, edges: Sequence | None = None
                   ) -> _Encoded | None:
    kind = column_kind(column_meta)
    missing = float(series.isna().mean()) if len(series) else 0.0
    if kind in ('categorical', 'boolean'):
        categories = None
        if kind == 'boolean' and not pd.api.types.is_bool_dtype(series):
            present = series.notna().to_numpy()
            converted = np.full(len(series), None, dtype=object)
            converted[present] = series[present].astype(bool).to_numpy()
            series = pd.Series(converted, index=series.index)
        elif column_meta.get('range_values'):
            # Keep the metadata's order (ordinal columns) and its unobserved categories.
            categories = list(column_meta['range_values'])
            known = {_identity(c) for c in categories}
            extra = [_plain(v) for v in pd.unique(series.dropna())
                     if _identity(_plain(v)) not in known]
            categories += _sorted_categories(extra)
        encoded = _encode_discrete(name, series, kind, categories=categories)
        if not encoded.labels:
            return None
        encoded.column = ColumnSpec(name=name, categories=list(encoded.labels))
    elif kind in ('numerical', 'datetime'):
        if kind == 'datetime':
            numbers = datetimes_to_seconds(series, column_meta.get('datetime_format'))
        else:
            numbers = pd.to_numeric(series, errors='coerce').to_numpy(dtype=float)
        encoded = _encode_numeric(name, numbers, is_integer_representation(column_meta),
                                  kind == 'datetime', num_main_bins, num_sub_bins, edges=edges)
        if encoded is None:
            return None
        if encoded.kind == 'values':
            encoded.column = ColumnSpec(name=name, values=list(encoded.labels))
    else:
        return None

    encoded.column.missing_proportion = round(missing, _DECIMALS)
    return encoded


# ---------------------------------------------------------------------- tabulation
def _marginal(encoded: _Encoded) -> StatisticSpec | None:
    if encoded.kind == 'binned':
        codes, labels = encoded.fine_codes, encoded.fine_labels
    else:
        codes, labels = encoded.codes, encoded.labels
    codes = codes[codes >= 0]
    if len(codes) == 0:
        return None
    counts = np.bincount(codes, minlength=len(labels))
    shares = round_proportions(counts)
    cells = [Cell((_key_part(label),), share) for label, share in zip(labels, shares)]
    return StatisticSpec(name=encoded.name, columns=(encoded.name,), cells=cells)


def _key_part(label: Any) -> Any:
    if isinstance(label, list):
        return (label[0], label[1])
    return label


def _joint(encodings: Sequence[_Encoded], name: str | None = None) -> StatisticSpec | None:
    present = np.logical_and.reduce([e.codes >= 0 for e in encodings])
    if not present.any():
        return None
    sizes = [len(e.labels) for e in encodings]
    flat = np.ravel_multi_index(tuple(e.codes[present] for e in encodings), sizes)
    cells_present, counts = np.unique(flat, return_counts=True)
    shares = round_proportions(counts)
    cells = []
    for flat_index, share in zip(cells_present, shares):
        if share <= 0:
            continue
        coords = np.unravel_index(flat_index, sizes)
        key = tuple(_key_part(e.labels[c]) for e, c in zip(encodings, coords))
        cells.append(Cell(key, share))
    if not cells:
        return None
    shares_sum = sum(cell.value for cell in cells)
    if abs(shares_sum - 1.0) > 1e-9:
        # Cells rounded to 0 were dropped: give their millionths back by largest remainders.
        fixed = round_proportions([cell.value for cell in cells])
        for cell, share in zip(cells, fixed):
            cell.value = share
    columns = tuple(e.name for e in encodings)
    return StatisticSpec(name=name or ' x '.join(columns), columns=columns, cells=cells)


def _entropy(codes: np.ndarray) -> tuple[float, int]:
    """Plug-in entropy (nats) and the number of distinct codes (non-negative integers)."""
    if len(codes) == 0:
        return 0.0, 0
    counts = np.bincount(codes)
    counts = counts[counts > 0]
    probabilities = counts / counts.sum()
    return float(-(probabilities * np.log(probabilities)).sum()), len(counts)


def _combine(codes: Sequence[np.ndarray]) -> np.ndarray:
    """One integer code per row for a tuple of non-negative code columns."""
    if len(codes) == 1:
        return codes[0]
    sizes = [int(column.max()) + 1 if len(column) else 1 for column in codes]
    return np.ravel_multi_index(tuple(codes), sizes)


def _dependence(first: _Encoded, second: _Encoded, given: _Encoded | None = None
                ) -> tuple[float, float]:
    """Normalised (conditional) mutual information and the p-value of its G-test."""
    from scipy.stats import chi2

    encodings = [first, second] + ([given] if given is not None else [])
    present = np.logical_and.reduce([e.codes >= 0 for e in encodings])
    codes = [e.codes[present] for e in encodings]
    num_rows = len(codes[0])
    if num_rows < 2:
        return 0.0, 1.0
    if given is None:
        (h_x, k_x), (h_y, k_y) = _entropy(codes[0]), _entropy(codes[1])
        h_xy, _ = _entropy(_combine(codes))
        information, normaliser = h_x + h_y - h_xy, min(h_x, h_y)
        dof = (k_x - 1) * (k_y - 1)
    else:
        h_z, k_z = _entropy(codes[2])
        h_xz, _ = _entropy(_combine([codes[0], codes[2]]))
        h_yz, _ = _entropy(_combine([codes[1], codes[2]]))
        h_xyz, _ = _entropy(_combine(codes))
        information = h_xz + h_yz - h_xyz - h_z
        normaliser = min(h_xz - h_z, h_yz - h_z)
        k_x, k_y = _entropy(codes[0])[1], _entropy(codes[1])[1]
        dof = (k_x - 1) * (k_y - 1) * k_z
    if normaliser <= 1e-12 or dof <= 0:
        return 0.0, 1.0
    information = max(information, 0.0)
    p_value = float(chi2.sf(2.0 * num_rows * information, dof))
    return float(min(information / normaliser, 1.0)), p_value


def dependence_score(first: _Encoded, second: _Encoded, given: _Encoded | None = None) -> float:
    """Normalised (conditional) mutual information of two encoded columns, in [0, 1].

    ``I(X; Y) / min(H(X), H(Y))`` or, with ``given``, ``I(X; Y | Z) / min(H(X|Z), H(Y|Z))``.

    Args:
        first (_Encoded): X, at main-bin resolution.
        second (_Encoded): Y.
        given (_Encoded or None): Z, to condition on.

    Returns:
        float
    """
    return _dependence(first, second, given)[0]


def choose_joints(encodings: Mapping[str, _Encoded], max_joints: int = 3,
                  apart: Mapping[str, str] | None = None,
                  same_presence: Sequence[str] = ()) -> list[list[str]]:
    """Pick column pairs and triples with the strongest dependence, by mutual information.

    Pairs score their normalised mutual information (:func:`dependence_score`) and count when
    it is at least ``MIN_AUTO_JOINT_SCORE`` and a G-test rejects independence at
    ``AUTO_JOINT_P_VALUE``. Two such pairs sharing a column Z, ``(X, Z)`` and ``(Y, Z)``,
    become the triple ``(X, Y, Z)`` only when a G-test says X and Y stay dependent given Z
    (a v-structure such as age -> category <- gender): otherwise the two pairs carry the same
    information. A triple
    ranks with its strongest pair. Groups are taken greedily, best first; a group inside a
    chosen one is skipped, and a chosen group replaces the chosen groups it contains.

    Args:
        encodings (Mapping[str, _Encoded]):
            Encoded columns by name (main-bin resolution).
        max_joints (int):
            At most this many groups.
        apart (Mapping[str, str] or None):
            A label per column (e.g. the child table a derived column aggregates); no group
            holds two columns with different labels. Unlabelled columns go with any.
        same_presence (Sequence[str]):
            Columns that join only columns present in exactly the same rows (a derived
            ``min`` is missing for a parent without children: a joint with the child count
            would lack the count 0 and contradict the count's marginal).

    Returns:
        list[list[str]]
    """
    names = list(encodings)
    apart = dict(apart or {})
    same_presence = set(same_presence)

    def compatible(group):
        if len({apart[name] for name in group if name in apart}) > 1:
            return False
        for name in same_presence.intersection(group):
            present = np.asarray(encodings[name].present, dtype=bool)
            if any(not np.array_equal(present, np.asarray(encodings[other].present, dtype=bool))
                   for other in group if other != name):
                return False
        return True

    pair_scores = {}
    for first, second in itertools.combinations(names, 2):
        cells = len(encodings[first].labels) * len(encodings[second].labels)
        if cells > MAX_AUTO_JOINT_CELLS or not compatible((first, second)):
            continue
        score, p_value = _dependence(encodings[first], encodings[second])
        if score >= MIN_AUTO_JOINT_SCORE and p_value < AUTO_JOINT_P_VALUE:
            pair_scores[frozenset((first, second))] = score

    candidates = [(score, 2, tuple(sorted(pair, key=names.index)))
                  for pair, score in pair_scores.items()]
    for triple in itertools.combinations(names, 3):
        if math.prod(len(encodings[name].labels) for name in triple) > MAX_AUTO_JOINT_CELLS or (
                not compatible(triple)):
            continue
        for center in triple:
            first, second = (name for name in triple if name != center)
            pair_a, pair_b = frozenset((first, center)), frozenset((second, center))
            if pair_a not in pair_scores or pair_b not in pair_scores:
                continue
            _, p_value = _dependence(encodings[first], encodings[second], encodings[center])
            if p_value < AUTO_JOINT_P_VALUE:
                best = max(pair_scores[pair_a], pair_scores[pair_b])
                candidates.append((best, 3, triple))
                break

    # Best first; at equal score a triple comes before the pair it contains.
    candidates.sort(key=lambda item: (-item[0], -item[1], item[2]))
    chosen: list[tuple[str, ...]] = []
    for _score, _size, group in candidates:
        if len(chosen) >= max_joints:
            break
        if any(set(group) <= set(other) for other in chosen):
            continue
        chosen = [other for other in chosen if not set(other) <= set(group)]
        chosen.append(group)
    return [list(group) for group in chosen]


# ---------------------------------------------------------------------- derived columns
def _derived_values(derived: DerivedColumnSpec, parent_keys: pd.Series, child: pd.DataFrame,
                    foreign_key: str) -> pd.Series:
    """Value of a derived column for each parent row."""
    from sdv_llmsynthor.spec.expressions import parse_expression

    if derived.predicate is not None:
        mask = np.asarray(parse_expression(derived.predicate).evaluate(child), dtype=bool)
    else:
        mask = np.ones(len(child), dtype=bool)
    keys = child[foreign_key]
    function = derived.function
    if function == 'count':
        result = keys[mask].value_counts()
        return parent_keys.map(result).fillna(0).astype(int)
    if function == 'sum' and derived.column is None:
        result = pd.Series(mask.astype(int), index=child.index).groupby(keys).sum()
        return parent_keys.map(result).fillna(0).astype(int)
    if function in ('any', 'all'):
        grouped = pd.Series(mask, index=child.index).groupby(keys)
        result = grouped.any() if function == 'any' else grouped.all()
        # A parent without children: any() is False, all() is vacuously True.
        values = result.reindex(parent_keys.to_numpy(), fill_value=function == 'all')
        return pd.Series(values.to_numpy(dtype=bool), index=parent_keys.index)
    values = pd.to_numeric(child[derived.column], errors='coerce')[mask]
    grouped = values.groupby(keys[mask])
    result = getattr(grouped, function)()
    mapped = parent_keys.map(result)
    if function == 'sum':
        mapped = mapped.fillna(0)
    return mapped


def _auto_derived(metadata_dict: dict[str, Any], parent: str, child: str,
                  child_frame: pd.DataFrame) -> dict[str, DerivedColumnSpec]:
    """A few generic aggregations: min and max of the first numerical child column."""
    columns = metadata_dict['tables'][child].get('columns', {})
    out = {}
    for name, column_meta in columns.items():
        if column_meta.get('sdtype') != 'numerical' or name not in child_frame:
            continue
        for function in ('min', 'max'):
            derived_name = f'{child}__{name}__{function}'
            out[derived_name] = DerivedColumnSpec(
                name=derived_name, child_table=child, function=function, column=name,
                description=f'{function} of {name} over the {child} rows of each {parent} row.',
            )
        break
    return out


def _as_derived(name: str, value: Any) -> DerivedColumnSpec:
    if isinstance(value, DerivedColumnSpec):
        return value
    return DerivedColumnSpec.from_dict(name, dict(value))


# ---------------------------------------------------------------------- entry point
def _joint_groups(joints, table_name, encodings, max_joints, is_single, apart=None,
                  same_presence=()):
    if joints is None:
        return []
    if isinstance(joints, str):
        if joints != 'auto':
            raise ValueError(f"joints must be 'auto', None, or lists of columns; got {joints!r}.")
        # Columns derived from two different child tables are synthesised in different edges
        # of the tree (spec/tree.py): a joint over both could not be targeted.
        return choose_joints(encodings, max_joints=max_joints, apart=apart,
                             same_presence=same_presence)
    if isinstance(joints, Mapping):
        groups = joints.get(table_name, [])
        if isinstance(groups, str):
            return _joint_groups(groups, table_name, encodings, max_joints, is_single, apart,
                                 same_presence)
    else:
        groups = [g for g in joints if is_single or all(c in encodings for c in g)]
    out = []
    for group in groups:
        group = list(group)
        unknown = [c for c in group if c not in encodings]
        if unknown:
            raise ValueError(
                f"joint {group} of table '{table_name}' names column(s) {unknown} that cannot "
                f'be tabulated (unknown, id, or empty). Columns: {sorted(encodings)}.'
            )
        out.append(group)
    return out


def _derive_table(frame, table_name, table_meta, extra_columns, joints, max_joints, is_single,
                  num_main_bins, num_sub_bins, bins) -> TableSpec:
    skip = {table_meta.get('primary_key')}
    encodings: dict[str, _Encoded] = {}
    table_bins = _table_option(bins, table_name)
    problems = []
    for name, edges in table_bins.items():
        column_meta = table_meta.get('columns', {}).get(name)
        kind = column_kind(column_meta) if column_meta is not None else None
        path = ['tables', table_name, 'columns', name, 'bins']
        if kind not in ('numerical', 'datetime'):
            problems.append((json_path(path), f"bins were given for '{name}', which is "
                             + (f'{column_meta.get("sdtype")}: bins are for numerical or '
                                'datetime columns.' if column_meta is not None
                                else f"not a column of table '{table_name}'.")))
        elif isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or len(edges) < 2:
            problems.append((json_path(path), f'{edges!r} is not a list of at least two edges.'))
        else:
            problems.extend(bin_edge_problems(path, list(edges), kind))
    if problems:
        raise SpecValidationError(problems)
    for name, column_meta in table_meta.get('columns', {}).items():
        if name in skip or name not in frame:
            continue
        encoded = _encode_column(name, frame[name], column_meta, num_main_bins, num_sub_bins,
                                 edges=table_bins.get(name))
        if encoded is not None:
            encodings[name] = encoded

    table = TableSpec(name=table_name, num_rows=int(len(frame)))
    for name, encoded in encodings.items():
        table.columns[name] = encoded.column
        statistic = _marginal(encoded)
        if statistic is not None:
            table.statistics.append(statistic)

    for name, (derived, encoded, add_marginal, _child) in extra_columns.items():
        if encoded is None:
            continue
        encodings[name] = encoded
        if add_marginal:
            statistic = _marginal(encoded)
            if statistic is not None:
                table.statistics.append(_partial_if_missing(statistic, [encoded]))
        if derived is not None:
            table.derived_columns[name] = derived

    used = {s.name for s in table.statistics}
    apart = {name: child for name, (_, _, _, child) in extra_columns.items()}
    partial = [name for name in extra_columns if name in encodings
               and not np.asarray(encodings[name].present, dtype=bool).all()]
    for group in _joint_groups(joints, table_name, encodings, max_joints, is_single, apart,
                               partial):
        statistic = _joint([encodings[c] for c in group])
        if statistic is None:
            continue
        if any(c in extra_columns for c in group):
            statistic = _partial_if_missing(statistic, [encodings[c] for c in group])
        base, suffix = statistic.name, 2
        while statistic.name in used:
            statistic.name = f'{base} ({suffix})'
            suffix += 1
        used.add(statistic.name)
        table.statistics.append(statistic)
    return table


def _partial_if_missing(statistic: StatisticSpec, encodings: Sequence[_Encoded]
                        ) -> StatisticSpec:
    """A statistic over parent rows some of which lack a value (a derived ``min`` of a parent
    without children) as a partial count table: its cells then hold the share of *all* parent
    rows, and the engine leaves the rest (no value) to the parents without children, instead
    of giving every parent a value (and so a child).
    """
    present = np.logical_and.reduce([np.asarray(e.present, dtype=bool) & (e.codes >= 0)
                                     for e in encodings])
    if present.all():
        return statistic
    num_present = int(present.sum())
    statistic.measure = 'count'
    statistic.complete = False
    for cell in statistic.cells:
        cell.value = _clean_number(round(cell.value * num_present, 3))
    return statistic


def _encode_derived(name: str, derived: DerivedColumnSpec, values: pd.Series,
                    num_main_bins: int) -> _Encoded | None:
    if derived.is_boolean:
        return _encode_discrete(name, values.astype(object), 'boolean', categories=[False, True])
    numbers = pd.to_numeric(values, errors='coerce').to_numpy(dtype=float)
    integer = derived.function == 'count' or (derived.function == 'sum' and derived.column is None)
    if derived.bins is not None or derived.values is not None:
        if derived.values is not None:
            support = sorted(float(v) for v in derived.values)
            encoded = _Encoded(name, 'values')
            encoded.present = ~np.isnan(numbers)
            lookup = {value: code for code, value in enumerate(support)}
            encoded.codes = np.array([lookup.get(v, -1) for v in numbers], dtype=np.int64)
            encoded.labels = [_clean_number(v) for v in support]
            return encoded
        main = np.array(derived.bins, dtype=float)
        encoded = _Encoded(name, 'binned')
        encoded.present = ~np.isnan(numbers)
        encoded.codes = bin_index(numbers, main)
        encoded.fine_codes = encoded.codes
        labels = [_clean_number(edge) for edge in main]
        encoded.labels = [[labels[i], labels[i + 1]] for i in range(len(main) - 1)]
        encoded.fine_labels = encoded.labels
        return encoded
    encoded = _encode_numeric(name, numbers, integer, False, num_main_bins, 1)
    if encoded is None:
        return None
    if encoded.kind == 'values':
        derived.values = list(encoded.labels)
    else:
        derived.bins = list(encoded.derived_bins)
        encoded.fine_codes = encoded.codes
        encoded.fine_labels = encoded.labels
    return encoded


def _table_option(option: Mapping[str, Any] | None, table_name: str) -> dict[str, Any]:
    """Per-table view of an option given flat (``{column: x}``) or nested by table."""
    if not option:
        return {}
    nested = option.get(table_name)
    if isinstance(nested, Mapping):
        return dict(nested)
    return {key: value for key, value in option.items() if not isinstance(value, Mapping)}


def derive_spec(data, metadata, num_main_bins: int = 6, num_sub_bins: int = 8,
                joints: str | Sequence[Sequence[str]] | Mapping[str, Any] | None = 'auto',
                max_joints: int = 3, table_name: str | None = None, context: str | None = None,
                name: str | None = None, derived: Mapping[str, Any] | None = None,
                bins: Mapping[str, Any] | None = None) -> MacroSpec:
    """Derive a spec from real rows: bins, marginals, joints and, for parent/child tables,
    child counts and derived columns.

    Args:
        data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            One table, or several tables by name (parent/child tables as in the metadata).
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata of ``data``. It decides each column's kind; id columns, primary
            and foreign keys and PII sdtypes are skipped.
        num_main_bins (int):
            Quantile-based main bins per numeric or datetime column (fewer when quantiles
            tie). Defaults to 6, as in the paper.
        num_sub_bins (int):
            Uniform sub-bins per main bin; marginals are tabulated at this resolution.
            Defaults to 8.
        joints ('auto', list of lists, dict or None):
            Joint contingency tables over main bins. ``'auto'`` (default) picks up to
            ``max_joints`` pairs or triples per table with the highest normalised mutual
            information; a list of column lists gives them explicitly (with several tables,
            each list goes to the table that has all its columns); a dict maps a table name to
            its lists (or ``'auto'``); None adds no joints.
        max_joints (int):
            At most this many automatic joints per table. Defaults to 3.
        table_name (str or None):
            Name of the table when ``data`` is a DataFrame; defaults to the metadata's only
            table.
        context (str or None):
            Free text stored as the spec's ``context``.
        name (str or None):
            The spec's ``name``.
        derived (dict or None):
            Derived columns of parent tables: ``{parent_table: {column_name: DerivedColumnSpec
            or its dict}}``. When None, each relationship gets the min and max of the first
            numerical child column. Their statistics are computed from the data, and their
            bins or values chosen like a numeric column's.
        bins (dict or None):
            Main bin edges to use instead of quantiles: ``{column: edges}``, or
            ``{table: {column: edges}}`` with several tables. Edges are numbers, or ISO dates
            for datetime columns; they must cover every value. Sub-bins still apply.

    Returns:
        MacroSpec:
            A spec that validates against ``metadata``.

    Raises:
        ValueError: if ``data`` does not match the metadata's tables, or a joint names a column
            that cannot be tabulated.
    """
    metadata_dict = metadata_to_dict(metadata)
    meta_tables = metadata_dict['tables']
    if isinstance(data, pd.DataFrame):
        if table_name is None:
            if len(meta_tables) != 1:
                raise ValueError(
                    'data is one DataFrame but the metadata has tables '
                    f'{sorted(meta_tables)}: pass table_name, or a dict of DataFrames.'
                )
            table_name = next(iter(meta_tables))
        data = {table_name: data}
    if not isinstance(data, Mapping) or not data:
        raise ValueError('data must be a pandas DataFrame or a non-empty dict of DataFrames.')
    unknown = [t for t in data if t not in meta_tables]
    if unknown:
        raise ValueError(f'The metadata has no table(s) {unknown}; tables: {sorted(meta_tables)}.')

    is_single = len(data) == 1
    extra_by_table: dict[str, dict[str, tuple]] = {t: {} for t in data}
    relationships = []
    for rel in metadata_dict['relationships']:
        parent, child = rel['parent_table_name'], rel['child_table_name']
        if parent not in data or child not in data:
            continue
        parent_keys = data[parent][rel['parent_primary_key']]
        child_frame = data[child]
        foreign_key = rel['child_foreign_key']
        sizes = parent_keys.map(child_frame[foreign_key].value_counts()).fillna(0).astype(int)

        support = np.unique(sizes.to_numpy())
        counts = [int((sizes == size).sum()) for size in support]
        child_count = StatisticSpec(
            name=f'child_count:{child}', columns=(child_count_column(child),),
            cells=[Cell((int(size),), share)
                   for size, share in zip(support, round_proportions(counts))],
            implicit=True,
        )
        relationships.append(RelationshipSpec(parent_table=parent, child_table=child,
                                              child_count=child_count))
        count_encoded = _encode_discrete(child_count_column(child), sizes, 'values',
                                         categories=[int(s) for s in support])
        extra_by_table[parent][child_count_column(child)] = (None, count_encoded, False, child)

        if derived is None:
            declared = _auto_derived(metadata_dict, parent, child, child_frame)
        else:
            declared = {
                column: _as_derived(column, spec)
                for column, spec in (derived.get(parent) or {}).items()
                if _as_derived(column, spec).child_table == child
            }
        for column, derived_spec in declared.items():
            values = _derived_values(derived_spec, parent_keys, child_frame, foreign_key)
            encoded = _encode_derived(column, derived_spec, values, num_main_bins)
            extra_by_table[parent][column] = (derived_spec, encoded, True, child)

    tables = {}
    for current, frame in data.items():
        tables[current] = _derive_table(
            frame, current, meta_tables[current], extra_by_table[current], joints, max_joints,
            is_single, num_main_bins, num_sub_bins, bins,
        )
        foreign_keys = {r['child_foreign_key'] for r in metadata_dict['relationships']
                        if r['child_table_name'] == current}
        for key in foreign_keys:
            tables[current].columns.pop(key, None)

    spec = MacroSpec(tables, relationships, name=name, context=context)
    spec._attach_child_counts()
    return spec
