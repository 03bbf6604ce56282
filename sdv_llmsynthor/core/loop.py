"""The synthesis loop: discrepancy-guided iterative synthesis, then calibration.

Each iteration (paper, "Discrepancy-Guided Iterative Synthesis"):

1. the pool's counts per cell (kept up to date incrementally: aggregation is additive) are
   compared with the targets scaled to the *pool target* (``pool_factor * num_rows``): the
   discrepancy Q;
2. the cells with the largest weighted deficits become anchors, with the records each needs;
3. the planner turns the anchors into proposals; weighted proposals get counts from the
   engine, favouring those that also fill other deficits;
4. the sampler draws records (households with their persons; the persons of a batch are then
   regrouped into the households where they fit, :mod:`sdv_llmsynthor.core.households`),
   validity rules reject what is invalid, the rest joins the pool.

The loop stops when the pool is full and its discrepancy is below ``target_tvd``, when no cell
is under-represented any more (or the fit stops improving), at ``max_iterations``, at the LLM
token budget, or after ``max_empty_iterations`` iterations in a row that added nothing (every
proposal rejected). Calibration then selects exactly ``num_rows`` records (households with all
their persons) minimising the weighted discrepancy over every statistic at once.

Runs are deterministic: iteration ``t`` draws from ``numpy.random.default_rng([seed, t])``
(planner), ``default_rng([seed, t, 1])`` (sampler) and ``default_rng([seed, t, 2])``
(regrouping), so a run resumed from its checkpoint gives the same result bit for bit as an
uninterrupted one. The calibration's work is capped by a number of swaps
(``calibration_max_swaps``), not by time, unless ``calibration_seconds`` runs out first (then a
``SynthesisWarning`` says the result depends on the machine's speed).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.core.aggregate import (
    StatisticCounts,
    aggregate_codes,
    build_contributions,
    combination_ids,
    compute_derived_columns,
)
from sdv_llmsynthor.core.anchors import Anchor, fill_anchor, select_anchors
from sdv_llmsynthor.core.calibration import CalibrationResult, calibrate_pool
from sdv_llmsynthor.core.checkpoint import CheckpointStore, spec_hash
from sdv_llmsynthor.core.discrepancy import (
    Discrepancy,
    compute_discrepancy,
    statistic_labels,
)
from sdv_llmsynthor.core.encoding import TableEncoding, compile_table
from sdv_llmsynthor.core.households import regroup_members
from sdv_llmsynthor.core.report import AnchorOutcomes, RunReport, find_conflicts, unmet_statistics
from sdv_llmsynthor.core.sampler import (
    PROPOSAL_ID_COLUMN,
    UNIT_COLUMN,
    sample_columns,
    sample_households,
    sample_proposals,
    target_fill,
)
from sdv_llmsynthor.core.validity import (
    DERIVED_AS_PROPOSED,
    PERSONS_ALL_VALID,
    RejectionTable,
    ValidityChecker,
)
from sdv_llmsynthor.errors import SynthesisError, SynthesisWarning
from sdv_llmsynthor.planners.base import Planner, PlannerState, Proposal, Range, UsageLedger

__all__ = ['SynthesisLoop', 'SynthesisResult', 'allocate_counts']

_HIDDEN_COLUMNS = (PROPOSAL_ID_COLUMN, UNIT_COLUMN)
_IMPROVEMENT = 0.01
_MIN_ACCEPTANCE = 0.1
_MIN_FACTOR = 0.05
_MAX_BATCH_GROWTH = 4
_SHUFFLE_STREAM = 0x5EED


@dataclass
class SynthesisResult:
    """What a run produced.

    Args:
        data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            Exactly the requested records (a dict of parent and child tables for
            parent/child synthesis, with consistent keys).
        history (list[dict]):
            One dict per iteration: ``iteration``, ``pool_rows``, ``records_added``,
            ``proposed``, ``rejected``, ``anchors``, ``proposals``, ``tvd`` (per statistic),
            ``mean_tvd``, ``max_tvd``, ``planner_seconds``, ``engine_seconds``,
            ``checkpoint_seconds``, ``llm_calls``, ``prompt_tokens``, ``completion_tokens``.
        rejections (pandas.DataFrame):
            ``table``, ``rule``, ``checked``, ``rejected``, ``rate``.
        unmet (pandas.DataFrame):
            Statistics outside tolerance after calibration, with reasons.
        proposals (pandas.DataFrame):
            The proposals library: ``proposal_id``, ``iteration``, ``source``, ``anchor_id``,
            ``anchor``, ``reason``, ``count``, ``weight``, ``accepted``, ``selected``,
            ``assignments`` and ``children``.
        calibration (CalibrationResult or None):
            The calibration's result.
        discrepancy (Discrepancy):
            Final discrepancy of ``data`` against the targets at the requested size.
        report (RunReport):
            Rejections, statistics not met and why, usage.
        usage (dict):
            LLM usage of the run.
        stopped_by (str):
            Why the loop stopped: ``'target_tvd'`` (every statistic within ``target_tvd``),
            ``'converged'`` (nothing left to refine: no deficit, or the pool full with no
            anchor left), ``'plateau'`` (the pool's mean TVD stopped improving by 1% over
            ``patience`` iterations while still above ``target_tvd``), ``'covered'`` (with
            ``stop_when_covered``: the pool holds every cell's records at the requested size),
            ``'max_iterations'``, ``'token_budget'`` or ``'no_progress'``.
        pool_units (int):
            Records (households) in the pool before calibration.
    """

    data: Any
    history: list[dict[str, Any]]
    rejections: pd.DataFrame
    unmet: pd.DataFrame
    proposals: pd.DataFrame
    calibration: CalibrationResult | None
    discrepancy: Discrepancy
    report: RunReport
    usage: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = ''
    pool_units: int = 0


def _deficit_ratios(proposals: list[Proposal], encoding: TableEncoding,
                    discrepancy: Discrepancy) -> tuple[np.ndarray, list[int]]:
    """Relative deficit (in ``[-1, 1]``) of the cell each proposal falls in, per statistic.

    A proposal is represented by one record: its categories, and the middle of its ranges.

    Returns:
        tuple:
            ``(num_proposals, num_statistics)`` ratios (NaN where the proposal leaves a column
            of the statistic open) and the ``id`` of each statistic.
    """
    from sdv_llmsynthor.core.sampler import range_bounds

    statistics = encoding.statistics
    ratios = np.full((len(proposals), len(statistics)), np.nan)
    if not proposals or not statistics:
        return ratios, [id(s) for s in statistics]
    codes = {}
    for column in encoding.statistic_columns:
        encoder = encoding.encoders[column]
        numbers = []
        values = []
        for proposal in proposals:
            value = proposal.assignments.get(column)
            if isinstance(value, Range):
                low, high = range_bounds(value, encoder)
                numbers.append((low + high) / 2)
                values.append(None)
            elif encoder.categories is not None:
                values.append(value)
            else:
                numbers.append(_as_seconds(value) if encoder.kind == 'datetime' else (
                    _as_number(value)))
        if encoder.categories is not None:
            codes[column] = encoder.encode(values)
        else:
            codes[column] = encoder.encode_floats(np.asarray(numbers, dtype=float))
    by_identity = {id(item.statistic): item for item in discrepancy.statistics}
    for position, statistic in enumerate(statistics):
        item = by_identity.get(id(statistic))
        if item is None:
            continue
        cells = statistic.cell_index(codes)
        targets = statistic.shares * item.target_rows
        ratio = np.where(targets > 0, item.deficits / np.maximum(targets, 1e-12), -1.0)
        ratio = np.clip(ratio, -1.0, 1.0)
        inside = cells >= 0
        ratios[inside, position] = ratio[cells[inside]]
    return ratios, [id(s) for s in statistics]


def _as_number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _as_seconds(value: Any) -> float:
    from sdv_llmsynthor.core.sampler import _to_seconds

    return _to_seconds(value)


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    shares = np.maximum(np.asarray(shares, dtype=float), 0.0)
    if total <= 0 or shares.sum() <= 0:
        return np.zeros(len(shares), dtype=np.int64)
    exact = shares / shares.sum() * total
    base = np.floor(exact).astype(np.int64)
    remainder = int(total - base.sum())
    if remainder > 0:
        order = np.argsort(-(exact - base), kind='stable')
        base[order[:remainder]] += 1
    return base


@contextlib.contextmanager
def _young_collections_only():
    """Run a block with only young-generation garbage collections (the loop calls them).

    An iteration allocates thousands of small objects (proposals, their assignments) that
    survive in the library. They trigger full collections, and a full collection walks every
    object of the process: with SDV and its dependencies imported that is half a second, every
    few iterations. The loop collects the young generations itself after each iteration and
    leaves full collections to the end of the run.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compact(frame: pd.DataFrame, codes: dict[str, np.ndarray] | None = None,
             encoders: dict[str, Any] | None = None) -> pd.DataFrame:
    """Store object columns as pandas categoricals.

    Besides memory, this keeps the pool out of the garbage collector's way: every full
    collection traverses every element of every object array, which made iterations stall
    for half a second once the pool held a few hundred thousand strings. Columns whose fine
    codes the sampler drew (``codes``, every value one of the encoder's categories as it is)
    are built from those codes instead of being hashed again.
    """
    codes = codes or {}
    converted = {}
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        column_codes = codes.get(column)
        encoder = None if encoders is None else encoders.get(column)
        if column_codes is not None and encoder is not None and encoder.categories is not None:
            converted[column] = pd.Categorical.from_codes(
                column_codes, categories=pd.Index(encoder.categories, dtype=object)
            )
        else:
            converted[column] = frame[column].astype('category')
    if not converted:
        return frame
    return frame.assign(**converted)


def _with_count(proposal: Proposal, count: int) -> Proposal:
    if type(proposal) is not Proposal:
        copied = copy.copy(proposal)
        copied.count = int(count)
        return copied
    # The plain class: its constructor is several times cheaper than copy.copy, which
    # matters at hundreds of thousands of library proposals per sample.
    return Proposal(proposal.assignments, int(count), proposal.weight, proposal.reason,
                    proposal.source, proposal.anchor_id, proposal.children)


def _check(checker: Any, frame: pd.DataFrame, codes: dict[str, np.ndarray]):
    """Run a checker, handing it the batch's codes when it is the engine's own."""
    if isinstance(checker, ValidityChecker):
        return checker.check(frame, codes)
    # A wrapper (e.g. one adding SDV constraints) only promises check(frame).
    return checker.check(frame)


def _grouped_largest_remainder(shares: np.ndarray, groups: np.ndarray,
                               totals: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding of ``shares`` to ``totals[g]`` within every group ``g``."""
    num_groups = len(totals)
    group_sums = np.bincount(groups, weights=shares, minlength=num_groups)
    scale = np.where(group_sums > 0, totals / np.maximum(group_sums, 1e-300), 0.0)
    exact = shares * scale[groups]
    base = np.floor(exact + 1e-9).astype(np.int64)
    remainder = totals.astype(np.int64) - np.bincount(groups, weights=base,
                                                       minlength=num_groups).astype(np.int64)
    remainder = np.where(group_sums > 0, remainder, 0)
    fraction = exact - base
    order = np.lexsort((np.arange(len(shares)), -fraction, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, np.arange(num_groups))
    rank = np.arange(len(order)) - starts[sorted_groups]
    bonus = np.zeros(len(shares), dtype=np.int64)
    bonus[order] = (rank < remainder[sorted_groups]).astype(np.int64)
    return base + bonus


def _anchor_units(anchor: Anchor, table: str) -> int:
    """Proposals (records of ``table``) an anchor needs: households for a person anchor."""
    if anchor.table == table or anchor.units <= 0:
        return int(anchor.records)
    return int(max(round(anchor.units), 1))


def _allocate_weighted(proposals: list[Proposal], anchors: list[Anchor],
                       discrepancy: Discrepancy, encoding: TableEncoding,
                       leftover: int) -> np.ndarray:
    """Counts of weighted proposals: each anchor's records split by weight x deficit score."""
    ratios, statistic_ids = _deficit_ratios(proposals, encoding, discrepancy)
    position_of_statistic = {sid: j for j, sid in enumerate(statistic_ids)}
    anchor_position = {anchor.anchor_id: i for i, anchor in enumerate(anchors)}
    # One group per anchor, and a last one for proposals without a known anchor.
    groups = np.array([anchor_position.get(p.anchor_id, len(anchors)) for p in proposals],
                      dtype=np.int64)
    for row, group in enumerate(groups):
        if group < len(anchors) and anchors[group].compiled is not None:
            # The anchor's own statistic says nothing about its completions.
            own = position_of_statistic.get(id(anchors[group].compiled))
            if own is not None:
                ratios[row, own] = np.nan
    # Every statistic the proposal falls in scales it by 1 + its relative deficit there (in
    # [0.05, 2]), as raking would: a completion landing in an over-full cell is all but dropped.
    factors = np.where(np.isnan(ratios), 1.0, np.clip(1.0 + ratios, _MIN_FACTOR, 2.0))
    weights = np.array([_as_number(1.0 if p.weight is None else p.weight) for p in proposals])
    weights = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    shares = weights * factors.prod(axis=1)
    # An anchor on the child table (persons) needs households, not its number of persons.
    totals = np.array([_anchor_units(anchor, encoding.table) for anchor in anchors] + [leftover],
                      dtype=float)
    return _grouped_largest_remainder(shares, groups, totals)


def allocate_counts(
    proposals: list[Proposal],
    anchors: list[Anchor],
    discrepancy: Discrepancy,
    encoding: TableEncoding,
    budget: int,
) -> list[int]:
    """Integer counts for proposals: explicit counts kept, weighted ones allocated per anchor.

    The records an anchor needs are split among its weighted proposals in proportion to
    ``weight * prod_s clip(1 + r_s, 0.05, 2)``, where ``r_s`` is the relative deficit
    ``deficit / target`` (in ``[-1, 1]``) of the cell of statistic ``s`` (other than the
    anchor's) that the proposal's representative record falls in: completions that also fill
    other deficits get more, those landing in over-full cells almost nothing. Weighted
    proposals without an anchor share what the budget has left. Negative or absurd counts are
    clipped, and the total is scaled down to the budget.

    Args:
        proposals (list[Proposal]):
            The planner's proposals.
        anchors (list[Anchor]):
            This iteration's anchors.
        discrepancy (Discrepancy):
            The current discrepancy.
        encoding (TableEncoding):
            The proposed table's encoding (the parent table for households).
        budget (int):
            Records (households) wanted this iteration.

    Returns:
        list[int]
    """
    counts = np.zeros(len(proposals), dtype=np.int64)
    weighted = []
    for index, proposal in enumerate(proposals):
        if proposal.count is not None:
            try:
                value = float(proposal.count)
            except (TypeError, ValueError):
                value = 0.0
            counts[index] = int(min(max(round(value), 0), max(budget, 0))) if math.isfinite(
                value) else 0
        else:
            weighted.append(index)

    if weighted:
        counts[weighted] = _allocate_weighted([proposals[i] for i in weighted], anchors,
                                              discrepancy, encoding,
                                              int(max(budget - counts.sum(), 0)))

    total = int(counts.sum())
    if budget > 0 and total > budget:
        counts = _largest_remainder(counts.astype(float), int(budget))
    return [int(c) for c in counts]


class SynthesisLoop:
    """Run LLMSynthor's discrepancy-guided synthesis loop on a spec, then calibrate.

    Args:
        spec (MacroSpec):
            The targets.
        metadata (sdv.metadata.Metadata or dict):
            The SDV metadata.
        planner (Planner):
            Who proposes records (``StatisticalPlanner`` or an LLM planner).
        num_rows (int or None):
            Records to produce (households for parent/child). Defaults to the table's
            ``num_rows`` in the spec.
        pool_factor (float):
            The pool aims at ``pool_factor * num_rows`` records before calibration. Defaults
            to 1.2.
        max_iterations (int):
            Iteration budget. Defaults to 50.
        target_tvd (float):
            Stop once the pool is full and every statistic's TVD is at most this. Defaults
            to 0 (run until converged or out of budget).
        token_budget (int or None):
            Stop once the planner's LLM usage reaches this many tokens.
        batch_rows (int or None):
            Records (households) per iteration. While the pool fills, the loop proposes enough
            for about this many to pass validity (at most four times as many proposed); once
            it is full, at most this many refine it. Defaults to a quarter of the pool target
            (at least 50).
        max_anchors (int):
            At most this many anchors per iteration. Defaults to 20.
        seed (int):
            Seed of every random draw. Defaults to 0.
        checkpoint_dir (str or PathLike or None):
            Folder for checkpoints; a run finding its own checkpoint there resumes from it.
        progress (bool):
            Show a tqdm progress bar on stderr. Defaults to True.
        allow_duplicates (bool):
            Let calibration select a record more than once. Defaults to False.
        table_name (str or None):
            The table to synthesise when the spec has several unrelated tables.
        max_empty_iterations (int):
            Stop after this many iterations in a row that added no record. Defaults to 3.
        patience (int):
            Once the pool is full, stop when the mean TVD of the pool has not improved by 1%
            over this many iterations. Defaults to 3.
        calibration_seconds (float or None):
            Time budget of the calibration. Defaults to 30.
        report_slack (float or None):
            Absolute share per cell tolerated beyond a statistic's tolerance before the report
            calls it not met. Defaults to ``max(1 / num_rows, 0.001)``.
        regroup (bool):
            Parent/child only: before checking a batch of households, move persons between
            households where that makes fewer households fail their rules or miss the derived
            values their proposal or anchor asks for (:mod:`sdv_llmsynthor.core.households`).
            Defaults to True.
        calibration_max_swaps (int or None):
            Deterministic work cap of the calibration's swap refinement. Defaults to
            ``20 * num_rows`` (at least 20,000). Only this cap keeps a run reproducible bit
            for bit on any machine: when ``calibration_seconds`` runs out first, the result
            depends on the machine's speed and a ``SynthesisWarning`` says so.
        stop_when_covered (bool):
            Stop (``stopped_by='covered'``) once the pool is full and holds, for every cell of
            every statistic, at least the records the *requested* size needs: calibration
            can then select them, and further iterations only add spare records. Meant for
            drawing from a learned library (``sample``), where iterations are cheap but not
            free; a fit keeps refining its pool. Defaults to False.
    """

    def __init__(
        self,
        spec: Any,
        metadata: Any,
        planner: Planner,
        num_rows: int | None = None,
        pool_factor: float = 1.2,
        max_iterations: int = 50,
        target_tvd: float = 0.0,
        token_budget: int | None = None,
        batch_rows: int | None = None,
        max_anchors: int = 20,
        seed: int = 0,
        checkpoint_dir: Any = None,
        progress: bool = True,
        allow_duplicates: bool = False,
        table_name: str | None = None,
        max_empty_iterations: int = 3,
        patience: int = 3,
        calibration_seconds: float | None = 30.0,
        report_slack: float | None = None,
        regroup: bool = True,
        calibration_max_swaps: int | None = None,
        stop_when_covered: bool = False,
    ):
        self.spec = spec
        self.metadata = metadata
        self.planner = planner
        self.num_rows = num_rows
        self.pool_factor = pool_factor
        self.max_iterations = max_iterations
        self.target_tvd = target_tvd
        self.token_budget = token_budget
        self.batch_rows = batch_rows
        self.max_anchors = max_anchors
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.allow_duplicates = allow_duplicates
        self.table_name = table_name
        self.max_empty_iterations = max_empty_iterations
        self.patience = patience
        self.calibration_seconds = calibration_seconds
        self.report_slack = report_slack
        self.regroup = bool(regroup)
        self.calibration_max_swaps = calibration_max_swaps
        self.stop_when_covered = bool(stop_when_covered)
        self._prepared = False

    # ------------------------------------------------------------------ setup
    def _check_parameters(self) -> None:
        if not isinstance(self.planner, Planner):
            raise SynthesisError(
                "The 'planner' parameter must be a Planner (e.g. StatisticalPlanner()). "
                f'Got {type(self.planner).__name__} instead.'
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or (
                self.seed < 0):
            raise SynthesisError(
                f"The 'seed' parameter must be a non-negative integer. Got {self.seed!r} instead."
            )
        if not (isinstance(self.pool_factor, (int, float)) and self.pool_factor >= 1):
            raise SynthesisError(
                "The 'pool_factor' parameter must be a number >= 1. "
                f'Got {self.pool_factor!r} instead.'
            )
        for name in ('max_iterations', 'max_anchors', 'max_empty_iterations', 'patience'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SynthesisError(
                    f"The '{name}' parameter must be a positive integer. Got {value!r} instead."
                )

    def _pick_tables(self) -> None:
        spec = self.spec
        relationships = list(spec.relationships)
        if relationships:
            if self.table_name is not None:
                relationships = [r for r in relationships
                                 if self.table_name in (r.parent_table, r.child_table)]
            if len(relationships) > 1:
                raise SynthesisError(
                    'The spec has several parent/child relationships; the engine synthesises '
                    'one parent table with one child table. Pass table_name to pick one.'
                )
        if relationships:
            relationship = relationships[0]
            self.table = relationship.parent_table
            self.child_table = relationship.child_table
            self.relationship = relationship
            return

        self.child_table = None
        self.relationship = None
        if self.table_name is not None:
            self.table = self.table_name
            return
        if len(spec.tables) != 1:
            raise SynthesisError(
                'The spec has several tables; pass table_name to pick the one to synthesise. '
                f"Tables: {', '.join(sorted(spec.tables))}."
            )
        self.table = next(iter(spec.tables))

    def _prepare(self) -> None:
        if self._prepared:
            return
        from sdv_llmsynthor.spec.model import child_count_column
        from sdv_llmsynthor.spec.resolve import metadata_to_dict, resolve_columns

        self._check_parameters()
        self._pick_tables()
        tables = [self.table] + ([self.child_table] if self.child_table else [])
        self.resolved = {t: resolve_columns(self.spec, self.metadata, t) for t in tables}
        self.encodings = {
            t: compile_table(self.spec, self.metadata, t, self.resolved[t]) for t in tables
        }
        self.statistics = [s for t in tables for s in self.encodings[t].statistics]
        self.labels = statistic_labels(self.statistics)
        self.checkers = {}
        for t in tables:
            table_spec = self.spec.tables.get(t)
            rules = table_spec.rules if table_spec is not None else []
            self.checkers[t] = ValidityChecker(t, self.encodings[t].encoders, rules)
        self.metadata_dict = metadata_to_dict(self.metadata)

        table_spec = self.spec.tables.get(self.table)
        num_rows = self.num_rows
        if num_rows is None and table_spec is not None:
            num_rows = table_spec.num_rows
        if num_rows is None or isinstance(num_rows, bool) or int(num_rows) != num_rows or (
                num_rows < 1):
            raise SynthesisError(
                f"The 'num_rows' parameter must be a positive integer (or the spec's table "
                f"'{self.table}' must give num_rows). Got {num_rows!r} instead."
            )
        self.requested = int(num_rows)
        self.pool_target = int(math.ceil(self.pool_factor * self.requested))
        self.rows_per_unit = {self.table: 1.0}
        self.count_column = None
        if self.child_table is not None:
            self.count_column = child_count_column(self.child_table)
            self.mean_children = self._mean_children()
            self.rows_per_unit[self.child_table] = self.mean_children
        if self.batch_rows is None:
            self.batch_size = max(50, int(math.ceil(self.pool_target / 4)))
        else:
            self.batch_size = max(1, int(self.batch_rows))
        self.labels_by_id = {id(s): label for s, label in zip(self.statistics, self.labels)}
        self.fills = {t: target_fill(self.encodings[t]) for t in tables}
        self._prepared = True

    def _mean_children(self) -> float:
        encoding = self.encodings[self.table]
        for statistic in encoding.statistics:
            if statistic.columns == (self.count_column,) and statistic.shares.sum() > 0:
                encoder = statistic.encoders[0]
                values = np.array([
                    float(encoder.code_range_to_value(tuple(statistic.cell_code_ranges(0)[i])))
                    for i in range(statistic.num_cells)
                ])
                return float((values * statistic.shares).sum() / statistic.shares.sum())
        parent = self.spec.tables.get(self.table)
        child = self.spec.tables.get(self.child_table)
        if parent is not None and child is not None and parent.num_rows and child.num_rows:
            return float(child.num_rows) / float(parent.num_rows)
        return 1.0

    def _target_rows(self, units: float) -> dict[str, float]:
        rows = {self.table: float(units)}
        if self.child_table is not None:
            rows[self.child_table] = float(units) * self.mean_children
        return rows

    def _fingerprint(self) -> dict[str, Any]:
        return {
            'spec_hash': spec_hash(self.spec),
            'seed': int(self.seed),
            'planner': str(self.planner.name),
            'settings': {
                'num_rows': self.requested,
                'pool_factor': float(self.pool_factor),
                'batch_rows': self.batch_size,
                'max_anchors': int(self.max_anchors),
                'table': self.table,
                'child_table': self.child_table,
                # Regrouping changes which households enter the pool.
                'regroup': bool(self.regroup),
                'stop_when_covered': self.stop_when_covered,
            },
        }

    # ------------------------------------------------------------------ pool state
    def _reset_state(self) -> None:
        self.iteration = 0
        self.units = 0
        self.frames: list[pd.DataFrame] = []
        self.child_frames: list[pd.DataFrame] = []
        self.codes: list[dict[str, np.ndarray]] = []
        self.child_codes: list[dict[str, np.ndarray]] = []
        self.counts = StatisticCounts(self.statistics, dict.fromkeys(self.encodings, 0))
        self.history: list[dict[str, Any]] = []
        self.rejections = RejectionTable()
        self.outcomes = AnchorOutcomes()
        self.usage = UsageLedger()
        self.library: list[dict[str, Any]] = []
        self.empty_streak = 0
        self.next_proposal_id = 0
        self.next_anchor_id = 0
        self.stopped_by = ''
        self.batch_files: list[str] = []
        self.regroup_stats = {'households': 0, 'repaired': 0, 'swaps': 0}

    def _add_to_pool(self, parents: pd.DataFrame, children: pd.DataFrame | None,
                     codes: dict[str, np.ndarray] | None = None,
                     child_codes: dict[str, np.ndarray] | None = None,
                     drawn_codes: dict[str, np.ndarray] | None = None) -> None:
        parent_encoding = self.encodings[self.table]
        if codes is None:
            codes = parent_encoding.encode(parents)
        rows = {self.table: len(parents)}
        all_codes = {self.table: codes}
        if self.child_table is not None:
            if child_codes is None:
                child_codes = self.encodings[self.child_table].encode(children)
            rows[self.child_table] = len(children)
            all_codes[self.child_table] = child_codes
            self.child_frames.append(children)
            self.child_codes.append(child_codes)
        self.counts.add(aggregate_codes(self.statistics, all_codes, rows))
        if children is not None:
            self.child_frames[-1] = _compact(children)
        parents = _compact(parents, drawn_codes, parent_encoding.encoders)
        self.frames.append(parents)
        self.codes.append(codes)
        self.units += len(parents)

    def _restore(self, state: dict[str, Any], store: CheckpointStore) -> None:
        self.iteration = int(state['iteration'])
        self.history = list(state['history'])
        self.rejections = RejectionTable.from_state(state['rejections'])
        self.outcomes = AnchorOutcomes.from_state(state['outcomes'])
        self.usage = UsageLedger.from_dict(state['usage'])
        self.empty_streak = int(state['empty_streak'])
        if self.history:
            last = self.history[-1]
            self.regroup_stats['households'] = int(last.get('households_regrouped', 0))
            self.regroup_stats['repaired'] = int(last.get('households_repaired', 0))
        self.next_proposal_id = int(state['next_proposal_id'])
        self.next_anchor_id = int(state['next_anchor_id'])
        # The stop reason is not restored: it is evaluated again (a resumed run may have a
        # larger budget).
        self.planner.set_state(state.get('planner_state', {}))
        self.batch_files = list(state.get('batches', []))
        for name in self.batch_files:
            batch = store.load_batch(name)
            self._add_to_pool(batch['parents'], batch.get('children'))
            self.library.extend(batch['proposals'])

    def _state(self) -> dict[str, Any]:
        return {
            'iteration': self.iteration,
            'units': self.units,
            'history': self.history,
            'rejections': self.rejections.to_state(),
            'outcomes': self.outcomes.to_state(),
            'usage': self.usage.as_dict(),
            'empty_streak': self.empty_streak,
            'next_proposal_id': self.next_proposal_id,
            'next_anchor_id': self.next_anchor_id,
            'stopped_by': self.stopped_by,
            'planner_state': self.planner.get_state(),
            'batches': self.batch_files,
        }

    # ------------------------------------------------------------------ the loop
    def _pool_discrepancy(self) -> Discrepancy:
        return compute_discrepancy(self.counts, self._target_rows(self.pool_target),
                                   self.labels)

    def _acceptance(self) -> float:
        recent = self.history[-2:]
        proposed = sum(entry['proposed'] for entry in recent)
        added = sum(entry['records_added'] for entry in recent)
        if proposed == 0:
            return 1.0
        return max(added / proposed, _MIN_ACCEPTANCE)

    def _budget(self, discrepancy: Discrepancy) -> int:
        remaining = self.pool_target - self.units
        if remaining > 0:
            # Propose enough that what survives validity fills the pool: up to batch_rows
            # *accepted* records per iteration (at most _MAX_BATCH_GROWTH times batch_rows
            # proposed), so that a low acceptance does not leave the pool short at the end.
            acceptance = self._acceptance()
            return int(min(math.ceil(remaining / acceptance),
                           math.ceil(self.batch_size / acceptance),
                           _MAX_BATCH_GROWTH * self.batch_size))
        refine = 0.0
        for item in discrepancy.statistics:
            scale = self.rows_per_unit.get(item.statistic.table, 1.0)
            refine = max(refine, float(np.maximum(item.deficits, 0).sum()) / scale)
        return int(min(self.batch_size, math.ceil(refine)))

    def _stop_reason(self, discrepancy: Discrepancy) -> str:
        if self.iteration >= self.max_iterations:
            return 'max_iterations'
        if self.token_budget is not None and self.usage.total_tokens >= self.token_budget:
            return 'token_budget'
        if self.empty_streak >= self.max_empty_iterations:
            return 'no_progress'
        full = self.units >= self.pool_target
        if full and discrepancy.max_tvd <= self.target_tvd:
            return 'target_tvd'
        if full and self.stop_when_covered and self._covers_request(discrepancy):
            return 'covered'
        if full and len(self.history) > self.patience:
            recent = [entry['mean_tvd'] for entry in self.history[-(self.patience + 1):]]
            if all(entry['pool_rows'] >= self.pool_target
                   for entry in self.history[-self.patience:]) and (
                    min(recent[1:]) > recent[0] * (1 - _IMPROVEMENT)):
                # Still above target_tvd (checked just above): a plateau, not convergence.
                return 'plateau'
        return ''

    def _covers_request(self, discrepancy: Discrepancy) -> bool:
        """Whether the pool holds every cell's records at the requested size."""
        ratio = self.requested / max(self.pool_target, 1)
        for item in discrepancy.statistics:
            needed = item.statistic.shares * item.target_rows * ratio
            if np.any(item.counts < np.floor(needed)):
                return False
            rest = item.statistic.rest_share * item.target_rows * ratio
            if item.rest_count < math.floor(rest):
                return False
        return True

    def _planner_state(self, discrepancy, anchors, budget, rng) -> PlannerState:
        rules_text = {}
        for table in self.checkers:
            table_spec = self.spec.tables.get(table)
            rules = table_spec.rules if table_spec is not None else []
            rules_text[table] = [f'{rule.name}: {rule.expression}' for rule in rules]
        contexts = [self.spec.context or '']
        for table in self.encodings:
            table_spec = self.spec.tables.get(table)
            if table_spec is not None and table_spec.context:
                contexts.append(f'{table}: {table_spec.context}')
        return PlannerState(
            spec=self.spec,
            metadata=self.metadata,
            table=self.table,
            child_table=self.child_table,
            columns=self.resolved,
            encodings=self.encodings,
            statistics=self.statistics,
            discrepancy=discrepancy,
            rules_text=rules_text,
            context_text='\n'.join(c for c in contexts if c),
            rng=rng,
            iteration=self.iteration,
            requested_rows=self.requested,
            pool_rows=self.units,
            pool_target=self.pool_target,
            batch_rows=budget,
            usage=self.usage,
            anchors=list(anchors),
        )

    def _run_iteration(self, discrepancy: Discrepancy, bar: Any) -> Discrepancy | None:
        iteration_started = time.perf_counter()
        budget = self._budget(discrepancy)
        if budget <= 0:
            self.stopped_by = 'converged'
            return None
        anchors = select_anchors(discrepancy, self.max_anchors, budget,
                                 start_id=self.next_anchor_id,
                                 rows_per_unit=self.rows_per_unit)
        remaining = self.pool_target - self.units
        if not anchors:
            if remaining <= 0:
                self.stopped_by = 'converged'
                return None
            anchors = [fill_anchor(self.next_anchor_id, self.table, min(remaining, budget))]
        self.next_anchor_id = max(a.anchor_id for a in anchors) + 1

        rng = np.random.default_rng([int(self.seed), self.iteration])
        state = self._planner_state(discrepancy, anchors, budget, rng)
        started = time.perf_counter()
        proposals = list(self.planner.propose(anchors, state) or [])
        planner_seconds = time.perf_counter() - started

        encoding = self.encodings[self.table]
        counts = allocate_counts(proposals, anchors, discrepancy, encoding, budget)
        # Shallow copies carry the allocated counts: the planner's own objects (which it may
        # keep and return again) are left as they were.
        proposals = [_with_count(p, c) for p, c in zip(proposals, counts) if c > 0]
        ids = list(range(self.next_proposal_id, self.next_proposal_id + len(proposals)))
        self.next_proposal_id += len(proposals)
        sampler_rng = np.random.default_rng([int(self.seed), self.iteration, 1])

        if self.child_table is None:
            drawn_codes = {}
            batch = sample_proposals(proposals, ids, encoding.encoders, sampler_rng,
                                     anchors=anchors, table=self.table,
                                     fill=self.fills.get(self.table), codes_out=drawn_codes)
            batch_codes = encoding.encode(batch, known=drawn_codes)
            result = _check(self.checkers[self.table], batch,
                            {**drawn_codes, **batch_codes})
            self.rejections.add_result(self.table, result)
            valid = result.valid
            accepted = batch.loc[valid].reset_index(drop=True)
            accepted_codes = {column: codes[valid] for column, codes in batch_codes.items()}
            accepted_drawn = {column: codes[valid] for column, codes in drawn_codes.items()}
            children = None
            accepted_child_codes = None
            failures = result.failures
            proposed_ids = batch[PROPOSAL_ID_COLUMN].to_numpy()
        else:
            (accepted, children, valid, failures, proposed_ids, accepted_codes,
             accepted_child_codes) = self._sample_households(
                proposals, ids, anchors, sampler_rng,
                np.random.default_rng([int(self.seed), self.iteration, 2]))
            accepted_drawn = None

        self._record_outcomes(anchors, proposals, ids, proposed_ids, valid, failures)
        accepted_ids = proposed_ids[valid]
        accepted_per = np.bincount(accepted_ids - ids[0], minlength=len(ids)) if ids else []
        anchor_text = {a.anchor_id: a.text for a in anchors}
        batch_proposals = [
            {'proposal': proposal, 'proposal_id': proposal_id, 'iteration': self.iteration,
             'accepted': int(accepted_per[index]),
             'anchor': anchor_text.get(proposal.anchor_id, '')}
            for index, (proposal, proposal_id) in enumerate(zip(proposals, ids))
        ]

        added = len(accepted)
        if added:
            self._add_to_pool(accepted, children, accepted_codes, accepted_child_codes,
                              drawn_codes=accepted_drawn)
        self.library.extend(batch_proposals)
        self.empty_streak = 0 if added else self.empty_streak + 1
        new_discrepancy = self._pool_discrepancy()
        # Everything but the planner: anchors, allocation, sampling, validity, aggregation,
        # discrepancy (the checkpoint is timed apart).
        engine_seconds = time.perf_counter() - iteration_started - planner_seconds

        self.history.append({
            'iteration': self.iteration,
            'pool_rows': self.units,
            'records_added': int(added),
            'proposed': int(len(valid)),
            'rejected': int(len(valid) - np.count_nonzero(valid)),
            'anchors': len(anchors),
            'proposals': len(proposals),
            'tvd': {k: float(v) for k, v in new_discrepancy.tvd.items()},
            'mean_tvd': float(new_discrepancy.mean_tvd),
            'max_tvd': float(new_discrepancy.max_tvd),
            'planner_seconds': float(planner_seconds),
            'engine_seconds': float(engine_seconds),
            'checkpoint_seconds': 0.0,
            'llm_calls': self.usage.llm_calls,
            'prompt_tokens': self.usage.prompt_tokens,
            'completion_tokens': self.usage.completion_tokens,
            'households_regrouped': int(self.regroup_stats['households']),
            'households_repaired': int(self.regroup_stats['repaired']),
        })
        self.iteration += 1
        self._pending_batch = None
        if added or batch_proposals:
            self._pending_batch = {
                'parents': accepted if added else accepted.iloc[:0],
                'children': children,
                'proposals': batch_proposals,
            }
        if bar is not None:
            bar.update(max(0, min(self.units, self.pool_target) - bar.n))
            bar.set_postfix(tvd=f'{new_discrepancy.mean_tvd:.4f}', calls=self.usage.llm_calls,
                            refresh=False)
        return new_discrepancy

    def _required_derived(self, proposals, anchors, parents) -> dict[str, tuple]:
        """Per derived column, the fine-code range each household must reach (``-1``: any).

        From the household's proposal (a derived value it states) and from its anchor (a
        household anchor fixing a derived column, e.g. ``has_child = True``).
        """
        encoders = self.encodings[self.table].encoders
        derived = [name for name, encoder in encoders.items() if encoder.derived is not None]
        anchors_by_id = {anchor.anchor_id: anchor for anchor in anchors}
        per_proposal = []
        wanted = set()
        for proposal in proposals:
            entry = {}
            anchor = anchors_by_id.get(proposal.anchor_id)
            if anchor is not None and anchor.table == self.table:
                for name in derived:
                    if name in anchor.fixed_codes:
                        entry[name] = tuple(anchor.fixed_codes[name])
            for name in derived:
                if name not in proposal.assignments:
                    continue
                value = proposal.assignments[name]
                if value is None or isinstance(value, Range):
                    continue
                code = int(encoders[name].encode([value])[0])
                if code < 0:
                    continue
                if name in entry and not entry[name][0] <= code < entry[name][1]:
                    entry[name] = (0, 0)  # the proposal contradicts its anchor: never met
                elif name not in entry:
                    entry[name] = (code, code + 1)
            wanted.update(entry)
            per_proposal.append(entry)
        if not wanted:
            return {}
        counts = np.array([int(p.count or 0) for p in proposals], dtype=np.int64)
        required = {}
        for name in sorted(wanted):
            ranges = np.array([entry.get(name, (-1, -1)) for entry in per_proposal],
                              dtype=np.int64).reshape(-1, 2)
            required[name] = (np.repeat(ranges[:, 0], counts), np.repeat(ranges[:, 1], counts))
        return required

    def _sample_households(self, proposals, ids, anchors, rng, regroup_rng=None):
        parent_encoding = self.encodings[self.table]
        child_encoding = self.encodings[self.child_table]
        parents, children = sample_households(
            proposals, ids, parent_encoding.encoders, child_encoding.encoders, rng,
            anchors=anchors, parent_table=self.table, first_unit=0,
            parent_fill=self.fills.get(self.table), child_fill=self.fills.get(self.child_table),
        )
        num_parents = len(parents)
        units = children[UNIT_COLUMN].to_numpy()
        derived = {name: encoder.derived for name, encoder in parent_encoding.encoders.items()
                   if encoder.derived is not None}
        child_codes = child_encoding.encode(children)
        person_result = _check(self.checkers[self.child_table], children, child_codes)
        self.rejections.add_result(self.child_table, person_result)
        bad_persons = np.bincount(units[~person_result.valid], minlength=num_parents) > 0
        required = self._required_derived(proposals, anchors, parents)

        household_rules = getattr(self.checkers[self.table], 'rule_names', [True])
        if derived and self.regroup and num_parents > 1 and (household_rules or required):
            # Persons move to the households where they fit (sizes and persons unchanged).
            regrouped = regroup_members(
                parents, units, children, derived, self.checkers[self.table],
                parent_encoding.encoders,
                regroup_rng if regroup_rng is not None else np.random.default_rng(0),
                required=required, eligible=~bad_persons, predicates=self._predicates(),
            )
            # Persons listed household by household again (codes follow the rows).
            order = np.argsort(regrouped.units, kind='stable')
            units = regrouped.units[order]
            children = children.iloc[order].reset_index(drop=True)
            children[UNIT_COLUMN] = units
            children[PROPOSAL_ID_COLUMN] = parents[PROPOSAL_ID_COLUMN].to_numpy()[units]
            child_codes = {column: codes[order] for column, codes in child_codes.items()}
            self.regroup_stats['households'] += regrouped.failing_before
            self.regroup_stats['repaired'] += regrouped.failing_before - regrouped.failing_after
            self.regroup_stats['swaps'] += regrouped.swaps

        if derived:
            values = compute_derived_columns(derived, children, units, num_parents,
                                             self._predicates())
            for column in values.columns:
                parents[column] = values[column].to_numpy()

        parent_codes = parent_encoding.encode(parents)
        household_result = _check(self.checkers[self.table], parents, parent_codes)
        household_result.failures[PERSONS_ALL_VALID] = bad_persons
        household_result.valid &= ~bad_persons
        if required:
            missed = np.zeros(num_parents, dtype=bool)
            for name, (low, high) in required.items():
                codes = parent_encoding.encoders[name].encode(parents[name])
                missed |= (low >= 0) & ((codes < low) | (codes >= high))
            household_result.failures[DERIVED_AS_PROPOSED] = missed
            household_result.valid &= ~missed
        self.rejections.add_result(self.table, household_result)
        valid = household_result.valid

        keep_parents = parents.loc[valid].reset_index(drop=True)
        new_units = np.cumsum(valid) - 1 + self.units
        keep_children_mask = valid[units]
        keep_children = children.loc[keep_children_mask].reset_index(drop=True)
        keep_children[UNIT_COLUMN] = new_units[units[keep_children_mask]]
        keep_parents[UNIT_COLUMN] = new_units[valid]
        failures = dict(household_result.failures)
        kept_codes = {column: codes[valid] for column, codes in parent_codes.items()}
        kept_child_codes = {column: codes[keep_children_mask]
                            for column, codes in child_codes.items()}
        return (keep_parents, keep_children, valid, failures,
                parents[PROPOSAL_ID_COLUMN].to_numpy(), kept_codes, kept_child_codes)

    def _predicates(self) -> dict[str, Any]:
        if not hasattr(self, '_parsed_predicates'):
            from sdv_llmsynthor.spec.expressions import parse_expression

            parsed = {}
            for name, encoder in self.encodings[self.table].encoders.items():
                if encoder.derived is not None and encoder.derived.predicate:
                    parsed[name] = parse_expression(encoder.derived.predicate)
            self._parsed_predicates = parsed
        return self._parsed_predicates

    def _record_outcomes(self, anchors, proposals, ids, proposed_ids, valid, failures) -> None:
        if not ids or len(proposed_ids) == 0:
            return
        anchor_index = {a.anchor_id: i for i, a in enumerate(anchors)}
        per_proposal_anchor = np.array([
            anchor_index.get(p.anchor_id, -1) for p in proposals
        ], dtype=np.int64)
        record_anchor = per_proposal_anchor[proposed_ids - ids[0]]
        has_anchor = record_anchor >= 0
        size = len(anchors)
        proposed = np.bincount(record_anchor[has_anchor], minlength=size)
        accepted = np.bincount(record_anchor[has_anchor & valid], minlength=size)
        rejected_by = {}
        for rule, failed in failures.items():
            mask = has_anchor & failed
            if mask.any():
                rejected_by[rule] = np.bincount(record_anchor[mask], minlength=size)
        for i, anchor in enumerate(anchors):
            if anchor.statistic is None or proposed[i] == 0:
                continue
            self.outcomes.add(anchor.statistic, anchor.cell, int(proposed[i]), int(accepted[i]),
                              {rule: int(c[i]) for rule, c in rejected_by.items()})

    # ------------------------------------------------------------------ calibration
    def _empty_frame(self, table: str) -> pd.DataFrame:
        frame = sample_columns([], np.zeros(0, dtype=np.int64), self.encodings[table].encoders,
                               np.random.default_rng(0))
        for column in _HIDDEN_COLUMNS:
            frame[column] = np.zeros(0, dtype=np.int64)
        return frame

    def _pool_frames(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        if self.frames:
            parents = pd.concat(self.frames, ignore_index=True)
        else:
            parents = self._empty_frame(self.table)
        children = None
        if self.child_table is not None:
            if self.child_frames:
                children = pd.concat(self.child_frames, ignore_index=True)
            else:
                children = self._empty_frame(self.child_table)
        return parents, children

    def _pool_codes(self, codes_list, encoding) -> dict[str, np.ndarray]:
        columns = encoding.statistic_columns
        if not codes_list:
            return {column: np.zeros(0, dtype=np.int32) for column in columns}
        return {column: np.concatenate([codes[column] for codes in codes_list])
                for column in columns}

    def _calibrate(self, parents, children) -> tuple[CalibrationResult | None, np.ndarray]:
        num_units = self.units
        if num_units == 0:
            return None, np.zeros(0, dtype=np.int64)
        blocks = []
        parent_codes = self._pool_codes(self.codes, self.encodings[self.table])
        unit_ids = np.arange(num_units, dtype=np.int64)
        for statistic in self.encodings[self.table].statistics:
            blocks.append((statistic, statistic.cell_index(parent_codes), unit_ids))
        unit_types = None
        if self.child_table is not None and children is not None:
            child_codes = self._pool_codes(self.child_codes, self.encodings[self.child_table])
            child_units = children[UNIT_COLUMN].to_numpy(dtype=np.int64)
            for statistic in self.encodings[self.child_table].statistics:
                blocks.append((statistic, statistic.cell_index(child_codes), child_units))
            matrix, offsets = build_contributions(blocks, num_units)
        else:
            # One record per unit: records with the same cells are interchangeable, so the
            # calibration gets one row per distinct combination of cells and every record's type.
            unit_types, first = combination_ids([cells for _, cells, _ in blocks])
            type_ids = np.arange(len(first), dtype=np.int64)
            matrix, offsets = build_contributions(
                [(statistic, cells[first], type_ids) for statistic, cells, _ in blocks],
                len(first),
            )

        wanted = self.requested
        duplicates = self.allow_duplicates
        if wanted > num_units and not duplicates:
            wanted = num_units
        totals = self._target_rows(wanted)
        targets = np.zeros(matrix.shape[1])
        weights = np.zeros(matrix.shape[1])
        tolerances = np.zeros(matrix.shape[1])
        for statistic, offset in offsets:
            total = totals[statistic.table]
            cells = slice(offset, offset + statistic.num_cells + 1)
            targets[cells] = np.append(statistic.shares, statistic.rest_share) * total
            weights[cells] = statistic.weight / (2.0 * max(total, 1.0))
            tolerances[cells] = statistic.tolerance * total
        result = calibrate_pool(
            matrix, targets, weights, int(wanted), seed=int(self.seed),
            allow_duplicates=duplicates, tolerances=tolerances,
            max_seconds=self.calibration_seconds, max_swaps=self._max_swaps(),
            unit_types=unit_types,
        )
        if result.stopped_by == 'max_seconds':
            warnings.warn(
                f'The calibration stopped at its time limit ({self.calibration_seconds} s) '
                'before its swap cap: the result depends on the speed of the machine and may '
                'differ from run to run. Raise calibration_seconds (or pass None) for a '
                'reproducible result.', SynthesisWarning, stacklevel=4,
            )
        return result, result.indices

    def _max_swaps(self) -> int:
        if self.calibration_max_swaps is not None:
            return int(self.calibration_max_swaps)
        return max(20_000, 20 * self.requested)

    def _metadata_columns(self, table: str) -> list[str]:
        return list(self.metadata_dict['tables'].get(table, {}).get('columns', {}))

    def _finish_table(self, frame: pd.DataFrame, table: str) -> pd.DataFrame:
        columns = self._metadata_columns(table) or [
            c for c in frame.columns if c not in _HIDDEN_COLUMNS
        ]
        out = {}
        for column in columns:
            if column in frame.columns:
                series = frame[column]
                if isinstance(series.dtype, pd.CategoricalDtype):
                    # Categories by code (a take, not a conversion): typed like the categories
                    # (integers stay integers) when nothing is missing, else objects with None.
                    codes = series.cat.codes.to_numpy()
                    categories = series.cat.categories.to_numpy(dtype=object)
                    if len(codes) and codes.min() >= 0:
                        typed = pd.Series(categories, dtype=object).infer_objects().to_numpy()
                        out[column] = typed[codes]
                    else:
                        lookup = np.empty(len(categories) + 1, dtype=object)
                        lookup[:-1] = categories
                        out[column] = lookup[codes]
                else:
                    out[column] = series.to_numpy(copy=True)
            else:
                out[column] = np.full(len(frame), None, dtype=object)
        # The arrays are this call's own: no second copy, no datetime scan of object columns.
        return pd.DataFrame(out, columns=columns, copy=False)

    def _final_data(self, parents, children, indices):
        from sdv_llmsynthor.spec.resolve import find_metadata_relationship, primary_key

        # Output rows in random order (the pool is grouped by anchor), reproducibly.
        indices = np.random.default_rng([int(self.seed), _SHUFFLE_STREAM]).permutation(indices)
        selected = parents.iloc[indices].reset_index(drop=True)
        parent_key = primary_key(self.metadata, self.table)
        if self.child_table is None:
            data = self._finish_table(selected, self.table)
            if parent_key is not None and parent_key in data.columns:
                data[parent_key] = np.arange(len(data), dtype=np.int64)
            return data, selected, None

        # Households: keep every person of every selected household, keys made consistent.
        unit_children = children[UNIT_COLUMN].to_numpy(dtype=np.int64)
        child_order = np.argsort(unit_children, kind='stable')
        child_starts = np.searchsorted(unit_children[child_order], np.arange(self.units + 1))
        household_ids = np.arange(len(indices), dtype=np.int64)
        starts = child_starts[indices]
        lengths = child_starts[indices + 1] - starts
        child_owner = np.repeat(household_ids, lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        child_rows = child_order[np.repeat(starts, lengths) + offsets]
        selected_children = children.iloc[child_rows].reset_index(drop=True)
        selected_children[UNIT_COLUMN] = child_owner

        parent_data = self._finish_table(selected, self.table)
        child_data = self._finish_table(selected_children, self.child_table)
        relation = find_metadata_relationship(self.metadata, self.table, self.child_table) or {}
        parent_key = self.relationship.parent_primary_key or relation.get(
            'parent_primary_key') or parent_key
        foreign_key = self.relationship.child_foreign_key or relation.get('child_foreign_key')
        if parent_key is not None:
            parent_data[parent_key] = household_ids
        if foreign_key is not None:
            child_data[foreign_key] = child_owner
        child_key = primary_key(self.metadata, self.child_table)
        if child_key is not None and child_key != foreign_key:
            child_data[child_key] = np.arange(len(child_data), dtype=np.int64)
        data = {self.table: parent_data, self.child_table: child_data}
        return data, selected, selected_children

    def _final_discrepancy(self, selected, selected_children, indices=None) -> Discrepancy:
        rows = {self.table: len(selected)}
        if indices is not None and self.child_table is None and self.codes:
            # The pool's codes, selected (the order does not matter to counts).
            pool_codes = self._pool_codes(self.codes, self.encodings[self.table])
            codes = {self.table: {column: values[indices]
                                  for column, values in pool_codes.items()}}
        else:
            codes = {self.table: self.encodings[self.table].encode(selected)}
        if self.child_table is not None:
            rows[self.child_table] = len(selected_children)
            codes[self.child_table] = self.encodings[self.child_table].encode(selected_children)
        counts = aggregate_codes(self.statistics, codes, rows)
        # Targets scale with the rows actually selected (persons vary with the households), so
        # the report measures shares; with nothing selected, the requested size is used.
        targets = {table: float(number) for table, number in rows.items()}
        for table, number in self._target_rows(self.requested).items():
            if targets.get(table, 0) == 0:
                targets[table] = number
        return compute_discrepancy(counts, targets, self.labels)

    def _proposals_frame(self, selected_ids: np.ndarray) -> pd.DataFrame:
        columns = ['proposal_id', 'iteration', 'source', 'anchor_id', 'anchor', 'reason',
                   'count', 'weight', 'accepted', 'selected', 'assignments', 'children']
        if not self.library:
            return pd.DataFrame(columns=columns)
        selected = np.bincount(selected_ids, minlength=self.next_proposal_id) if len(
            selected_ids) else np.zeros(self.next_proposal_id, dtype=np.int64)
        rows = []
        for entry in self.library:
            proposal = entry['proposal']
            rows.append({
                'proposal_id': entry['proposal_id'],
                'iteration': entry['iteration'],
                'source': proposal.source,
                'anchor_id': proposal.anchor_id,
                'anchor': entry['anchor'],
                'reason': proposal.reason,
                'count': proposal.count,
                'weight': proposal.weight,
                'accepted': entry['accepted'],
                'selected': int(selected[entry['proposal_id']]),
                'assignments': proposal.assignments,
                'children': proposal.children,
            })
        return pd.DataFrame(rows, columns=columns)

    # ------------------------------------------------------------------ public
    def run(self) -> SynthesisResult:
        """Run (or resume) the loop, then calibrate to exactly the requested rows.

        Returns:
            SynthesisResult

        Raises:
            SynthesisError: if the parameters or the spec cannot be used.
            CheckpointMismatchError: if ``checkpoint_dir`` holds another run's checkpoint.
        """
        self._prepare()
        self._reset_state()
        store = None
        if self.checkpoint_dir is not None:
            store = CheckpointStore(self.checkpoint_dir, self._fingerprint())
            state = store.load()
            if state is not None:
                self._restore(state, store)

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            unit = 'households' if self.child_table else 'rows'
            bar = tqdm(total=self.pool_target, initial=min(self.units, self.pool_target),
                       unit=f' {unit}', disable=not self.progress, leave=False,
                       desc='llmsynthor')
        try:
            with _young_collections_only():
                discrepancy = self._iterate(store, bar)
        finally:
            if bar is not None:
                bar.close()

        return self._finish(discrepancy)

    def _iterate(self, store: CheckpointStore | None, bar: Any) -> Discrepancy:
        """Iterate until a stop reason holds; returns the pool's last discrepancy."""
        discrepancy = self._pool_discrepancy()
        while True:
            reason = self._stop_reason(discrepancy)
            if reason:
                self.stopped_by = reason
                break
            new = self._run_iteration(discrepancy, bar)
            if new is None:
                break
            if store is not None:
                started = time.perf_counter()
                self.batch_files = store.save(self.iteration - 1, self._state(),
                                              self._pending_batch)
                self.history[-1]['checkpoint_seconds'] = time.perf_counter() - started
            self._pending_batch = None
            discrepancy = new
            gc.collect(1)
        if store is not None:
            self.batch_files = store.save(self.iteration, self._state(), None)
        return discrepancy

    def _finish(self, pool_discrepancy: Discrepancy) -> SynthesisResult:
        parents, children = self._pool_frames()
        run_warnings = []
        if self.units == 0:
            message = (
                f'The loop stopped ({self.stopped_by}) without a single valid record: every '
                'proposal was rejected. See the rejection table and the statistics not met.'
            )
            run_warnings.append(message)
            warnings.warn(message, SynthesisWarning, stacklevel=3)
        elif self.units < self.requested and not self.allow_duplicates:
            message = (
                f'The pool holds only {self.units} valid '
                f"{'households' if self.child_table else 'records'} but {self.requested} were "
                f'requested (stopped by {self.stopped_by}); returning {self.units}. Raise '
                'max_iterations or pass allow_duplicates=True.'
            )
            run_warnings.append(message)
            warnings.warn(message, SynthesisWarning, stacklevel=3)

        calibration, indices = self._calibrate(parents, children)
        data, selected, selected_children = self._final_data(parents, children, indices)
        final = self._final_discrepancy(selected, selected_children, indices)
        selected_ids = selected[PROPOSAL_ID_COLUMN].to_numpy(dtype=np.int64)

        slack = self.report_slack
        if slack is None:
            slack = max(1.0 / self.requested, 0.001)
        conflicts = find_conflicts(self.statistics, self.labels)
        unmet = unmet_statistics(final, self.outcomes, conflicts, pool=pool_discrepancy,
                                 slack=slack, stopped_by=self.stopped_by)
        statistics = pd.DataFrame([
            {'statistic': item.label, 'table': item.statistic.table, 'tvd': item.tvd,
             'max_abs_error': item.max_abs_error}
            for item in final.statistics
        ], columns=['statistic', 'table', 'tvd', 'max_abs_error'])
        usage = self.usage.as_dict()
        rejections = self.rejections.to_frame()
        report = RunReport(rejections=rejections, unmet=unmet, statistics=statistics,
                           usage=usage, stopped_by=self.stopped_by, warnings=run_warnings)
        return SynthesisResult(
            data=data,
            history=list(self.history),
            rejections=rejections,
            unmet=unmet,
            proposals=self._proposals_frame(selected_ids),
            calibration=calibration,
            discrepancy=final,
            report=report,
            usage=usage,
            stopped_by=self.stopped_by,
            pool_units=self.units,
        )
