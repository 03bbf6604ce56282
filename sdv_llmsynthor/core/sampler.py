"""The sampler: proposals to records.

Each proposal is drawn ``count`` times. Per column:

- a category (or discrete value, or None for missing) is copied as given;
- a :class:`~sdv_llmsynthor.planners.base.Range` gives a value drawn uniformly within the range
  intersected with the anchor's cell (when the proposal completes an anchor that fixes the
  column) and with the column's ``[min, max]``; integer columns draw among the integers inside
  the interval (so the value stays in its cell), floats are rounded to the column's decimals
  when known; datetimes are drawn in seconds and converted (formatted as the metadata says);
- a column the proposal leaves out is completed from the targets when a statistic covers it
  (:func:`target_fill`: the column's marginal, or a joint's summed over its other columns; a
  binned column draws its bin there, then a value inside), else from the column itself: a
  uniform category, a uniform value in ``[min, max]``; missing with the column's missing
  proportion either way.

Everything is vectorised over records: per-proposal bounds are repeated by the counts and one
uniform draw per record does the rest. Every record carries the hidden column
``__proposal_id``; household records also carry ``__unit`` (the household they belong to).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.encoding import ColumnEncoder
from sdv_llmsynthor.planners.base import Proposal, Range

__all__ = [
    'PROPOSAL_ID_COLUMN',
    'UNIT_COLUMN',
    'range_bounds',
    'sample_columns',
    'sample_households',
    'sample_proposals',
    'target_fill',
]

PROPOSAL_ID_COLUMN = '__proposal_id'
"""Hidden column: the proposal a record was drawn from."""

UNIT_COLUMN = '__unit'
"""Hidden column of household records: the household (unit) a row belongs to."""

_UNSET = object()


def _to_seconds(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    try:
        timestamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return math.nan
    if pd.isna(timestamp):
        return math.nan
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert('UTC').tz_localize(None)
    return float((timestamp - pd.Timestamp(0)) / pd.Timedelta(seconds=1))


def _to_number(value: Any, encoder: ColumnEncoder) -> float:
    if encoder.kind == 'datetime':
        return _to_seconds(value)
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def range_bounds(value: Range, encoder: ColumnEncoder) -> tuple[float, float]:
    """Numeric bounds of a range (datetimes in seconds), ordered low to high.

    Args:
        value (Range):
            The range.
        encoder (ColumnEncoder):
            The column.

    Returns:
        tuple[float, float]
    """
    low = _to_number(value.low, encoder)
    high = _to_number(value.high, encoder)
    if not math.isnan(low) and not math.isnan(high) and high < low:
        low, high = high, low
    return low, high


def _anchor_bounds(anchor: Any, column: str, encoder: ColumnEncoder):
    if anchor is None or column not in getattr(anchor, 'fixed_codes', {}):
        return None
    if encoder.edges is None:
        return None
    return encoder.code_range_bounds(anchor.fixed_codes[column])


def _draw_numeric(encoder: ColumnEncoder, low: np.ndarray, high: np.ndarray,
                  uniforms: np.ndarray) -> np.ndarray:
    """Draw one value per record uniformly in ``[low, high)`` with the column's rounding."""
    # In place where possible: at a million records every temporary costs a page-faulted
    # allocation on the first call.
    values = np.subtract(high, low)
    values *= uniforms
    values += low
    maximum = encoder.maximum
    if encoder.integer:
        first = np.ceil(low - 1e-9)
        closed = np.isfinite(high) & (maximum is not None) & (high >= (maximum or 0) - 1e-9)
        last = np.where(closed | (high == low), np.floor(high + 1e-9), np.ceil(high - 1e-9) - 1)
        has_integer = last >= first
        span = np.where(has_integer, last - first + 1, 1)
        picked = first + np.floor(uniforms * span)
        values = np.where(has_integer, np.minimum(picked, last), np.round(values))
    elif encoder.decimals is not None:
        step = 10.0 ** (-int(encoder.decimals))
        rounded = np.round(values, int(encoder.decimals))
        mask = rounded >= high
        mask &= high > low
        rounded[mask] -= step
        np.less(rounded, low, out=mask)
        rounded[mask] += step
        # Keep the rounded value where it stays inside [low, high) (or equals a point).
        np.greater_equal(rounded, low, out=mask)
        mask &= (rounded < high) | (high == low)
        np.copyto(values, rounded, where=mask)
    return values


def _finish_numeric(encoder: ColumnEncoder, values: np.ndarray):
    if encoder.kind == 'datetime':
        stamps = pd.to_datetime(
            pd.Series(values).round(6), unit='s', errors='coerce'
        )
        if encoder.datetime_format:
            return stamps.dt.strftime(encoder.datetime_format).where(stamps.notna(), None)
        return stamps
    if encoder.integer and not np.isnan(values).any():
        return values.astype(np.int64)
    return values


def target_fill(encoding: Any) -> dict[str, np.ndarray]:
    """Target probability of every fine code of the columns a statistic covers.

    A column's own marginal is used when the spec gives one, else the joint with the fewest
    columns that mentions it, summed over its other columns. A cell spanning several fine
    codes spreads its share evenly over them; the unlisted share of a partial statistic goes
    evenly to the codes no listed cell covers (or to all codes when every code is listed).

    Args:
        encoding (TableEncoding):
            The table's encoding (its encoders and compiled statistics).

    Returns:
        dict[str, numpy.ndarray]:
            Column -> probabilities over its fine codes (summing to 1).
    """
    out: dict[str, np.ndarray] = {}
    by_size = sorted(encoding.statistics, key=lambda statistic: len(statistic.columns))
    for statistic in by_size:
        for position, column in enumerate(statistic.columns):
            encoder = encoding.encoders.get(column)
            if column in out or encoder is None or encoder.derived is not None:
                continue
            size = encoder.num_codes
            if size <= 0:
                continue
            probabilities = np.zeros(size)
            covered = np.zeros(size, dtype=bool)
            ranges = statistic.cell_code_ranges(position)
            for (start, stop), share in zip(ranges.tolist(), statistic.shares.tolist()):
                start, stop = max(int(start), 0), min(int(stop), size)
                if stop > start:
                    probabilities[start:stop] += share / (stop - start)
                    covered[start:stop] = True
            rest = statistic.rest_share if not statistic.complete else 0.0
            if rest > 0:
                spread = ~covered if (~covered).any() else np.ones(size, dtype=bool)
                probabilities[spread] += rest / spread.sum()
            total = probabilities.sum()
            if total > 0 and np.isfinite(total):
                out[column] = probabilities / total
    return out


def sample_columns(
    assignments: list[dict[str, Any]],
    counts: np.ndarray,
    encoders: dict[str, ColumnEncoder],
    rng: np.random.Generator,
    anchors: list[Any] | None = None,
    columns: list[str] | None = None,
    extra: dict[str, np.ndarray] | None = None,
    fill: dict[str, np.ndarray] | None = None,
    codes_out: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Draw records for a list of assignments, ``counts[i]`` records for the i-th.

    Args:
        assignments (list[dict]):
            Column -> category / value / None / ``Range`` per proposal.
        counts (numpy.ndarray):
            Records per proposal.
        encoders (dict[str, ColumnEncoder]):
            The table's columns.
        rng (numpy.random.Generator):
            Random generator.
        anchors (list[Anchor or None] or None):
            Per proposal, the anchor it completes (its cell bounds the ranges).
        columns (list[str] or None):
            Columns to produce (defaults to every modelled column: categorical, boolean,
            numerical, datetime and not derived).
        extra (dict[str, numpy.ndarray] or None):
            More columns (one value per record) added to the frame as they are.
        fill (dict[str, numpy.ndarray] or None):
            Per column, probabilities of its fine codes for the records whose proposal leaves
            it out (:func:`target_fill`); uniform where absent.
        codes_out (dict or None):
            When given, receives the fine codes of the categorical columns whose values are
            all categories as they are (the sampler drew them, so encoding them again and
            hashing them into pandas categoricals can be skipped).

    Returns:
        pandas.DataFrame:
            ``counts.sum()`` rows, proposals in order.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if columns is None:
        columns = [
            name for name, encoder in encoders.items()
            if encoder.kind in ('categorical', 'boolean', 'numerical', 'datetime')
            and encoder.derived is None
        ]
    if anchors is None:
        anchors = [None] * len(assignments)
    owner = np.repeat(np.arange(len(assignments)), counts)
    fill = fill or {}
    data: dict[str, Any] = {}
    for column in columns:
        encoder = encoders[column]
        raw = [assignment.get(column, _UNSET) for assignment in assignments]
        probabilities = fill.get(column)
        if probabilities is not None and len(probabilities) != encoder.num_codes:
            probabilities = None
        if encoder.categories is not None:
            data[column], codes = _sample_categorical(encoder, raw, owner, rng, probabilities)
            if codes_out is not None and codes is not None:
                codes_out[column] = codes
        else:
            data[column] = _sample_numeric(encoder, column, raw, owner, rng, anchors,
                                           probabilities)
    for name, column_values in (extra or {}).items():
        data[name] = np.array(column_values)  # a copy: the frame below does not copy
    # Every array above is this call's own: copy=False also skips pandas' scan of each object
    # column for datetimes and the consolidation copy (0.27 s at 1.2 million records).
    return pd.DataFrame(data, index=pd.RangeIndex(total), copy=False)


def _draw_codes(rng, probabilities, size):
    """``size`` fine codes drawn with the given probabilities (inverse CDF)."""
    cumulative = np.cumsum(probabilities)
    codes = np.searchsorted(cumulative, rng.random(size) * cumulative[-1], side='right')
    return np.minimum(codes, len(probabilities) - 1)


def _sample_categorical(encoder, raw, owner, rng, probabilities=None):
    """Values of a categorical column, and their fine codes when they are all exact.

    Returns:
        tuple[numpy.ndarray, numpy.ndarray or None]:
            The object values, and ``int32`` codes (``-1`` missing) or None when some
            proposal value is not one of the categories as it is (unknown, or matched only by
            its text), so that only the encoder can say what it is.
    """
    per_proposal = np.empty(len(raw), dtype=object)
    per_code = np.full(len(raw), -1, dtype=np.int32)
    unset = np.zeros(len(raw), dtype=bool)
    exact = True
    categories_list = encoder.categories
    for i, value in enumerate(raw):
        if value is _UNSET or isinstance(value, Range):
            unset[i] = True
            continue
        per_proposal[i] = value
        if exact and not (value is None or (isinstance(value, float) and math.isnan(value))):
            code = encoder.category_code(value)
            category = categories_list[code] if code >= 0 else None
            if code < 0 or type(category) is not type(value) or category != value:
                exact = False
            per_code[i] = code
    values = per_proposal[owner] if len(owner) else np.empty(0, dtype=object)
    codes = per_code[owner] if len(owner) else np.zeros(0, dtype=np.int32)
    fill = unset[owner] if len(owner) else np.zeros(0, dtype=bool)
    if fill.any():
        categories = np.empty(len(categories_list), dtype=object)
        categories[:] = categories_list
        size = int(fill.sum())
        if probabilities is None:
            drawn = rng.integers(0, len(categories), size=size)
        else:
            drawn = _draw_codes(rng, probabilities, size)
        draws = categories[drawn]
        drawn = drawn.astype(np.int32)
        if encoder.missing_proportion > 0:
            missing = rng.random(len(draws)) < encoder.missing_proportion
            draws[missing] = None
            drawn[missing] = -1
        values[fill] = draws
        codes[fill] = drawn
    return values, (codes if exact else None)


def _resolve_numeric(encoder, column, value, anchor, minimum, maximum) -> tuple:
    """``(kind, low, high, discrete support)`` of one numeric assignment.

    ``kind`` is ``'range'``, ``'point'``, ``'unset'`` (complete from the column) or
    ``'missing'``.
    """
    if isinstance(value, Range):
        lo, hi = range_bounds(value, encoder)
        if math.isnan(lo) and math.isnan(hi):
            return ('unset', math.nan, math.nan, None)
        lo = minimum if math.isnan(lo) else lo
        hi = maximum if math.isnan(hi) else hi
        bounds = _anchor_bounds(anchor, column, encoder)
        if bounds is not None:
            new_lo, new_hi = max(lo, bounds[0]), min(hi, bounds[1])
            lo, hi = (new_lo, new_hi) if new_lo < new_hi else bounds
        lo, hi = max(lo, minimum), min(hi, maximum)
        if hi < lo:
            lo = hi = min(max(lo, minimum), maximum)
        support = None
        if encoder.is_discrete:
            support = encoder.values[(encoder.values >= lo) & (encoder.values <= hi)]
            if support.size == 0:
                support = encoder.values[[int(np.argmin(np.abs(encoder.values - lo)))]]
        return ('range', lo, hi, support)
    number = _to_number(value, encoder)
    if math.isnan(number):
        return ('missing', math.nan, math.nan, None)
    return ('point', number, number, None)


def _sample_numeric(encoder, column, raw, owner, rng, anchors, probabilities=None):
    size = len(raw)
    low = np.full(size, np.nan)
    high = np.full(size, np.nan)
    unset = np.zeros(size, dtype=bool)
    point = np.zeros(size, dtype=bool)
    discrete_choices: dict[int, np.ndarray] = {}
    minimum = encoder.minimum if encoder.minimum is not None else -np.inf
    maximum = encoder.maximum if encoder.maximum is not None else np.inf
    # Proposals often share values (and anchors): resolve each distinct pair once.
    resolved: dict[Any, tuple] = {}
    for i, value in enumerate(raw):
        if value is _UNSET:
            unset[i] = True
            continue
        if value is None:
            continue
        anchor = anchors[i]
        try:
            key = (type(value), value, id(anchor))
            entry = resolved.get(key)
        except TypeError:  # unhashable value from an untrusted planner
            key, entry = None, None
        if entry is None:
            entry = _resolve_numeric(encoder, column, value, anchor, minimum, maximum)
            if key is not None:
                resolved[key] = entry
        kind, lo, hi, support = entry
        if kind == 'unset':
            unset[i] = True
        elif kind == 'point':
            low[i] = high[i] = lo
            point[i] = True
        elif kind == 'range':
            low[i], high[i] = lo, hi
            if support is not None:
                discrete_choices[i] = support

    num_records = len(owner)
    uniforms = rng.random(num_records)
    record_low = low[owner]
    record_high = high[owner]
    values = np.full(num_records, np.nan)
    regular = ~np.isnan(record_low) & ~point[owner]
    if regular.all():
        values = _draw_numeric(encoder, record_low, record_high, uniforms)
    elif regular.any():
        values[regular] = _draw_numeric(encoder, record_low[regular], record_high[regular],
                                        uniforms[regular])
    points = point[owner]
    values[points] = record_low[points]

    for i, support in discrete_choices.items():
        rows = np.flatnonzero(owner == i)
        values[rows] = support[rng.integers(0, len(support), size=len(rows))]

    fill = unset[owner]
    if fill.any():
        count = int(fill.sum())
        if probabilities is not None and encoder.is_discrete:
            drawn = encoder.values[_draw_codes(rng, probabilities, count)].astype(float)
        elif probabilities is not None and encoder.is_binned:
            codes = _draw_codes(rng, probabilities, count)
            edges = np.asarray(encoder.edges, dtype=float)
            drawn = _draw_numeric(encoder, edges[codes], edges[codes + 1], rng.random(count))
        elif encoder.is_discrete:
            drawn = encoder.values[rng.integers(0, len(encoder.values), size=count)]
        elif np.isfinite(minimum) and np.isfinite(maximum):
            drawn = _draw_numeric(encoder, np.full(count, minimum), np.full(count, maximum),
                                  rng.random(count))
        else:
            drawn = np.full(count, np.nan)
        if encoder.missing_proportion > 0:
            drawn = np.where(rng.random(count) < encoder.missing_proportion, np.nan, drawn)
        values[fill] = drawn
    return _finish_numeric(encoder, values)


def _resolve_anchor(proposal: Proposal, anchors_by_id: dict[int, Any], table: str):
    anchor = anchors_by_id.get(proposal.anchor_id) if proposal.anchor_id is not None else None
    if anchor is not None and getattr(anchor, 'table', table) != table:
        return None
    return anchor


def sample_proposals(
    proposals: list[Proposal],
    proposal_ids: list[int],
    encoders: dict[str, ColumnEncoder],
    rng: np.random.Generator,
    anchors: list[Any] | None = None,
    table: str = '',
    fill: dict[str, np.ndarray] | None = None,
    codes_out: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Draw the records of single-table proposals (their ``count`` must be set).

    Args:
        proposals (list[Proposal]):
            The proposals.
        proposal_ids (list[int]):
            Run-wide id of each proposal.
        encoders (dict[str, ColumnEncoder]):
            The table's columns.
        rng (numpy.random.Generator):
            Random generator.
        anchors (list[Anchor] or None):
            This iteration's anchors (their cells bound the ranges of their proposals).
        table (str):
            The table name.
        fill (dict[str, numpy.ndarray] or None):
            Target probabilities for the columns a proposal leaves out (:func:`target_fill`).
        codes_out (dict or None):
            Receives the categorical columns' fine codes (see :func:`sample_columns`).

    Returns:
        pandas.DataFrame:
            The records with the hidden column ``__proposal_id``.
    """
    anchors_by_id = {anchor.anchor_id: anchor for anchor in anchors or []}
    counts = np.array([max(int(p.count or 0), 0) for p in proposals], dtype=np.int64)
    ids = np.repeat(np.asarray(proposal_ids, dtype=np.int64), counts)
    return sample_columns(
        [p.assignments for p in proposals], counts, encoders, rng,
        anchors=[_resolve_anchor(p, anchors_by_id, table) for p in proposals],
        extra={PROPOSAL_ID_COLUMN: ids}, fill=fill, codes_out=codes_out,
    )


def sample_households(
    proposals: list[Proposal],
    proposal_ids: list[int],
    parent_encoders: dict[str, ColumnEncoder],
    child_encoders: dict[str, ColumnEncoder],
    rng: np.random.Generator,
    anchors: list[Any] | None = None,
    parent_table: str = '',
    first_unit: int = 0,
    parent_fill: dict[str, np.ndarray] | None = None,
    child_fill: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw households (parent rows) with their persons (child rows).

    Every proposal gives ``count`` households; each has one child row per entry of
    ``proposal.children``.

    Args:
        proposals (list[Proposal]):
            Household proposals.
        proposal_ids (list[int]):
            Run-wide id of each proposal.
        parent_encoders (dict[str, ColumnEncoder]):
            The parent table's columns.
        child_encoders (dict[str, ColumnEncoder]):
            The child table's columns.
        rng (numpy.random.Generator):
            Random generator.
        anchors (list[Anchor] or None):
            This iteration's anchors.
        parent_table (str):
            The parent table's name.
        first_unit (int):
            Unit number of the first household drawn.
        parent_fill, child_fill (dict[str, numpy.ndarray] or None):
            Target probabilities for the columns a proposal leaves out (:func:`target_fill`).

    Returns:
        tuple[pandas.DataFrame, pandas.DataFrame]:
            Parent rows and child rows, both with ``__proposal_id`` and ``__unit``.
    """
    anchors_by_id = {anchor.anchor_id: anchor for anchor in anchors or []}
    counts = np.array([max(int(p.count or 0), 0) for p in proposals], dtype=np.int64)
    ids = np.asarray(proposal_ids, dtype=np.int64)
    parents = sample_columns(
        [p.assignments for p in proposals], counts, parent_encoders, rng,
        anchors=[_resolve_anchor(p, anchors_by_id, parent_table) for p in proposals],
        fill=parent_fill,
    )
    parents[PROPOSAL_ID_COLUMN] = np.repeat(ids, counts)
    unit_start = first_unit + np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    parents[UNIT_COLUMN] = first_unit + np.arange(int(counts.sum()), dtype=np.int64)

    child_assignments = []
    child_counts = []
    child_units = []
    child_ids = []
    child_positions = []
    for index, proposal in enumerate(proposals):
        if counts[index] == 0:
            continue
        households = np.arange(counts[index], dtype=np.int64) + unit_start[index]
        for position, child in enumerate(proposal.children or []):
            child_assignments.append(child)
            child_counts.append(counts[index])
            child_units.append(households)
            child_ids.append(np.full(counts[index], ids[index]))
            child_positions.append(np.full(counts[index], position))
    if child_assignments:
        children = sample_columns(child_assignments, np.asarray(child_counts), child_encoders,
                                  rng, fill=child_fill)
        children[PROPOSAL_ID_COLUMN] = np.concatenate(child_ids)
        children[UNIT_COLUMN] = np.concatenate(child_units)
        order = np.lexsort((np.concatenate(child_positions), children[UNIT_COLUMN].to_numpy()))
        children = children.iloc[order].reset_index(drop=True)
    else:
        children = sample_columns([], np.zeros(0, dtype=np.int64), child_encoders, rng)
        children[PROPOSAL_ID_COLUMN] = np.zeros(0, dtype=np.int64)
        children[UNIT_COLUMN] = np.zeros(0, dtype=np.int64)
    return parents, children
