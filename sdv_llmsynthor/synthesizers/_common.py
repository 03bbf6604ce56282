"""Plumbing shared by the SDV-facing synthesizers: specs, planners, the library, constraints.

*Fit learns, sample draws.* ``fit`` runs the synthesis loop (``core.loop``) with the chosen
planner and keeps its **library**: every proposal that produced valid records, with how many
records it produced and how many calibration kept. ``sample(num_rows)`` runs the same loop
again at the requested size with :class:`LibraryPlanner`, which replays the library instead of
asking an LLM: the pool is first filled by drawing library proposals in proportion to what
calibration kept at fit time, then the loop's remaining deficits are filled with library
proposals compatible with each deficit cell. Only a cell no library proposal can produce, in a
request larger than the fit size, is handed to the real planner (an LLM call for the LLM
planners; ``sample`` then warns). The
loop's calibration finally selects exactly ``num_rows`` records against the targets rescaled to
``num_rows``.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.planners.base import Planner, Proposal, Range, value_from_json, value_to_json

__all__ = [
    'PLANNER_NAMES',
    'BudgetedPlanner',
    'ConstraintValidity',
    'LibraryPlanner',
    'build_planner',
    'format_table',
    'is_whole_number',
    'learn_bounds',
    'library_from_result',
    'load_spec',
    'merge_usage',
    'run_report_from_result',
]

PLANNER_NAMES = ('anchored', 'free', 'statistical')
"""Planner names the synthesizers accept (or pass a ``Planner`` instance)."""


def is_whole_number(value) -> bool:
    """Whether ``value`` is a real number without a fractional part (booleans are not).

    Args:
        value (object):
            A row count or a similar argument, as the user gave it.

    Returns:
        bool
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return float(value).is_integer()


# ---------------------------------------------------------------------- spec and planner
def load_spec(spec):
    """Return a :class:`~sdv_llmsynthor.spec.MacroSpec` from a spec, a dict or a JSON path.

    Args:
        spec (MacroSpec, dict, str or PathLike):
            The spec.

    Returns:
        MacroSpec

    Raises:
        SynthesizerInputError: if ``spec`` is none of these or the file does not exist.
        SpecValidationError: if the document does not follow the JSON Schema.
    """
    from sdv.errors import SynthesizerInputError

    from sdv_llmsynthor.spec import MacroSpec

    if isinstance(spec, MacroSpec):
        return spec
    if isinstance(spec, dict):
        return MacroSpec.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        if not Path(spec).is_file():
            raise SynthesizerInputError(f"The spec file '{os.fspath(spec)}' does not exist.")
        return MacroSpec.load(spec)
    raise SynthesizerInputError(
        "The 'spec' parameter must be a MacroSpec, a dict or the path of a spec JSON file. "
        f'Got {type(spec).__name__} instead.'
    )


def _resolve_client(llm, cache_dir):
    from sdv_llmsynthor.llm import resolve_llm

    client = resolve_llm(llm)
    if cache_dir is not None and getattr(client, 'cache', None) is None:
        from sdv_llmsynthor.llm.cache import ResponseCache

        client.cache_dir = os.fspath(cache_dir)
        client.cache = ResponseCache(cache_dir)
    return client


class BudgetedPlanner(Planner):
    """An LLM planner with a token budget; once it is spent, the statistical planner takes over.

    The loop's own token budget stops the loop, which can leave the pool short of the
    requested rows. The synthesizers rather keep going: the LLM proposes until the run's
    ledger reaches ``token_budget`` tokens, then the statistical planner completes the
    remaining anchors (no LLM call), so the requested rows are always produced and the LLM cost
    stays bounded. Within an iteration the LLM gets only as many anchors (largest deficits
    first) as the remaining budget covers at the tokens per anchor measured so far (one call's
    worth at first); the statistical planner completes the others.

    Args:
        inner (Planner):
            The LLM planner.
        token_budget (int or None):
            Prompt plus completion tokens the LLM may use in one run. None: no limit.
    """

    def __init__(self, inner, token_budget=None):
        from sdv_llmsynthor.planners.statistical import StatisticalPlanner

        self.inner = inner
        self.token_budget = token_budget
        self.fallback = StatisticalPlanner()
        self.name = getattr(inner, 'name', 'planner')
        self.uses_llm = getattr(inner, 'uses_llm', False)
        self.client = getattr(inner, 'client', None)
        self.fallback_anchors = 0
        self.llm_anchors = 0
        self.llm_tokens = 0

    def exhausted(self, state) -> bool:
        """Whether the run has spent the token budget."""
        return self.token_budget is not None and state.usage.total_tokens >= self.token_budget

    def _llm_share(self, anchors, state) -> int:
        if self.token_budget is None:
            return len(anchors)
        remaining = self.token_budget - state.usage.total_tokens
        if self.llm_anchors and self.llm_tokens:
            per_anchor = self.llm_tokens / self.llm_anchors
            share = int(remaining // max(per_anchor, 1.0))
        else:
            share = int(getattr(self.inner, 'anchors_per_call', 3) or 3)
        return max(1, min(len(anchors), share))

    def propose(self, anchors, state):
        """Ask the LLM planner for the anchors the budget covers, the statistical one for others."""
        anchors = list(anchors)
        if self.exhausted(state):
            self.fallback_anchors += len(anchors)
            return self.fallback.propose(anchors, state)
        share = self._llm_share(anchors, state)
        before = state.usage.total_tokens
        proposals = list(self.inner.propose(anchors[:share], state) or [])
        self.llm_tokens += state.usage.total_tokens - before
        self.llm_anchors += share
        if share < len(anchors):
            self.fallback_anchors += len(anchors) - share
            proposals += list(self.fallback.propose(anchors[share:], state) or [])
        return proposals

    def get_state(self):
        """Return the wrapped planner's state (for checkpoints)."""
        return {'inner': self.inner.get_state(), 'fallback': self.fallback.get_state(),
                'fallback_anchors': self.fallback_anchors, 'llm_anchors': self.llm_anchors,
                'llm_tokens': self.llm_tokens}

    def set_state(self, state):
        """Restore what :meth:`get_state` returned."""
        self.inner.set_state(state.get('inner', {}))
        self.fallback.set_state(state.get('fallback', {}))
        self.fallback_anchors = int(state.get('fallback_anchors', 0))
        self.llm_anchors = int(state.get('llm_anchors', 0))
        self.llm_tokens = int(state.get('llm_tokens', 0))


def build_planner(planner, llm=None, cache_dir=None, token_budget=None):
    """Return ``(planner, client)`` for a planner name (or instance) and an ``llm`` setting.

    Args:
        planner (str or Planner):
            ``'anchored'`` (default of the synthesizers), ``'free'``, ``'statistical'`` or a
            ``Planner`` instance.
        llm (LLMClient, str, dict or None):
            See ``sdv_llmsynthor.llm.resolve_llm``. Ignored by the statistical planner.
        cache_dir (str or None):
            Folder of the LLM response cache.
        token_budget (int or None):
            LLM tokens one run may spend before the statistical planner takes over (see
            :class:`BudgetedPlanner`).

    Returns:
        tuple[Planner, LLMClient or None]

    Raises:
        SynthesizerInputError: for an unknown planner name.
    """
    from sdv.errors import SynthesizerInputError

    if isinstance(planner, Planner):
        if getattr(planner, 'uses_llm', False) and token_budget is not None:
            return BudgetedPlanner(planner, token_budget), getattr(planner, 'client', None)
        return planner, getattr(planner, 'client', None)
    if planner == 'statistical':
        from sdv_llmsynthor.planners.statistical import StatisticalPlanner

        return StatisticalPlanner(), None
    if planner == 'anchored':
        from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner

        client = _resolve_client(llm, cache_dir)
        return BudgetedPlanner(AnchoredLLMPlanner(client), token_budget), client
    if planner == 'free':
        from sdv_llmsynthor.planners.free import FreeLLMPlanner

        client = _resolve_client(llm, cache_dir)
        return BudgetedPlanner(FreeLLMPlanner(client), token_budget), client
    raise SynthesizerInputError(
        f"Invalid value {planner!r} for parameter 'planner'. Please provide one of "
        f'{list(PLANNER_NAMES)} or a Planner instance.'
    )


def infer_joints(client, metadata, data, seed=0):
    """Ask the LLM (as the paper's copula) which columns depend on each other, per table.

    The rows are first summarised into a spec without joints (bins and marginals: what the
    LLM is shown, never the rows themselves); the LLM then names the dependent column groups,
    which become the joint statistics of the derived spec. Falls back to ``'auto'`` (joints
    chosen by mutual information) when the copula prompt is unavailable or returns nothing.

    Args:
        client (LLMClient or None):
            The LLM client.
        metadata (sdv.metadata.Metadata):
            The metadata.
        data (dict[str, pandas.DataFrame]):
            The real tables.
        seed (int):
            Sampling seed of the call.

    Returns:
        tuple:
            The ``joints`` argument for ``MacroSpec.from_data`` (``'auto'``, or a dict mapping
            each table to its groups) and the LLM usage of the calls (a dict).
    """
    from sdv_llmsynthor.planners.base import UsageLedger

    ledger = UsageLedger()
    if client is None:
        return 'auto', ledger.as_dict()
    try:
        from sdv_llmsynthor.planners.copula import infer_dependencies
        from sdv_llmsynthor.spec import MacroSpec

        marginals = MacroSpec.from_data(data if len(data) > 1 else next(iter(data.values())),
                                        metadata, joints=None,
                                        table_name=None if len(data) > 1 else next(iter(data)))
        joints = {}
        for table in data:
            groups = infer_dependencies(client, marginals, metadata, table, usage=ledger,
                                        seed=seed)
            joints[table] = [list(group) for group in groups] if groups else 'auto'
    except Exception as error:  # noqa: BLE001 - any failure falls back to the MI-based joints
        warnings.warn(
            f'The LLM could not propose dependencies ({type(error).__name__}: {error}); '
            'choosing joint statistics by mutual information instead.',
            stacklevel=3,
        )
        return 'auto', ledger.as_dict()
    return joints, ledger.as_dict()


# ---------------------------------------------------------------------- constraints
class ConstraintValidity:
    """A table's validity checker extended with SDV constraints (reject sampling).

    Every batch the loop generates is checked by the wrapped
    :class:`~sdv_llmsynthor.core.validity.ValidityChecker` and by each constraint's
    ``is_valid``; failing records are rejected and counted in the rejection table under
    ``'constraint <repr>'``.

    Args:
        checker (ValidityChecker):
            The table's checker.
        constraints (list):
            SDV constraint objects (``sdv.cag``).
        metadata (sdv.metadata.Metadata):
            The metadata (used by constraints that were not fitted on data).
    """

    def __init__(self, checker, constraints, metadata):
        self.checker = checker
        self.constraints = list(constraints)
        self.metadata = metadata

    def __getattr__(self, name):
        """Delegate everything else to the wrapped checker."""
        if name == 'checker':
            raise AttributeError(name)
        return getattr(self.checker, name)

    @staticmethod
    def rule_name(constraint) -> str:
        """Name of a constraint in the rejection table."""
        return f'constraint {constraint!r}'

    def check(self, frame):
        """Check a batch against the table's rules and the constraints.

        Args:
            frame (pandas.DataFrame):
                The records.

        Returns:
            ValidityResult
        """
        result = self.checker.check(frame)
        if len(frame) == 0:
            for constraint in self.constraints:
                result.failures[self.rule_name(constraint)] = np.zeros(0, dtype=bool)
            return result
        view = frame.reset_index(drop=True)
        for constraint in self.constraints:
            metadata = None if getattr(constraint, '_fitted', False) else self.metadata
            try:
                valid = constraint.is_valid(view, metadata=metadata)
                valid = np.asarray(pd.Series(valid).fillna(False), dtype=bool)
            except Exception as error:  # noqa: BLE001 - a failing constraint rejects the batch
                valid = np.zeros(len(frame), dtype=bool)
                result.errors[self.rule_name(constraint)] = str(error)
            failed = ~valid
            result.failures[self.rule_name(constraint)] = failed
            result.valid &= valid
        return result


def install_constraints(loop, constraints_by_table, metadata):
    """Wrap the loop's validity checkers so SDV constraints reject records too.

    Args:
        loop (SynthesisLoop):
            A loop (prepared here).
        constraints_by_table (dict[str, list]):
            Constraints per table.
        metadata (sdv.metadata.Metadata):
            The metadata.
    """
    loop._prepare()
    for table, constraints in constraints_by_table.items():
        if constraints and table in loop.checkers:
            loop.checkers[table] = ConstraintValidity(loop.checkers[table], constraints, metadata)


# ---------------------------------------------------------------------- library
def library_from_result(result) -> list[dict[str, Any]]:
    """Keep the proposals of a run that produced valid records (the *library*).

    Args:
        result (SynthesisResult):
            The run.

    Returns:
        list[dict]:
            JSON-serialisable entries: ``assignments``, ``children``, ``count`` (records
            drawn at fit time), ``accepted`` (valid records), ``selected`` (records kept by
            calibration), ``source``, ``reason``.
    """
    library = []
    proposals = result.proposals
    if proposals is None or len(proposals) == 0:
        return library
    for row in proposals.itertuples(index=False):
        accepted = int(row.accepted or 0)
        if accepted <= 0:
            continue
        children = row.children
        library.append({
            'assignments': {k: value_to_json(v) for k, v in dict(row.assignments).items()},
            'children': None if children is None or (isinstance(children, float)
                                                     and math.isnan(children)) else [
                {k: value_to_json(v) for k, v in child.items()} for child in children
            ],
            'count': max(int(row.count or 0), accepted),
            'accepted': accepted,
            'selected': int(row.selected or 0),
            'source': str(row.source or ''),
            'reason': str(row.reason or ''),
        })
    return library


def _entry_values(entry) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """A library entry's assignments (and children) as proposal values."""
    children = entry.get('children')
    assignments = {k: value_from_json(v) for k, v in entry['assignments'].items()}
    if children is not None:
        children = [{k: value_from_json(v) for k, v in child.items()} for child in children]
    return assignments, children


def _entry_proposal(entry, count, anchor_id=None, values=None) -> Proposal:
    assignments, children = _entry_values(entry) if values is None else values
    return Proposal(
        assignments=assignments,
        count=int(count),
        reason=entry.get('reason', ''),
        source='library',
        anchor_id=anchor_id,
        children=children,
    )


def _code_bounds(value, encoder) -> tuple[int, int]:
    """Fine-code range a proposal value can produce (``(-1, -1)``: none)."""
    if value is None:
        return (-1, -1)
    if isinstance(value, Range):
        if encoder.edges is None:
            return (0, encoder.num_codes)
        from sdv_llmsynthor.core.sampler import range_bounds

        low, high = range_bounds(value, encoder)
        edges = encoder.edges
        if not (math.isfinite(low) and math.isfinite(high)):
            return (0, encoder.num_codes)
        start = int(np.clip(np.searchsorted(edges, low, side='right') - 1, 0, len(edges) - 2))
        stop = int(np.clip(np.searchsorted(edges, high, side='left'), start + 1, len(edges) - 1))
        return (start, stop)
    code = encoder.category_code(value)
    return (code, code + 1) if code >= 0 else (-1, -1)


def _memo_code_bounds(memo, value, encoder) -> tuple[int, int]:
    """:func:`_code_bounds` once per distinct value of a column (library values repeat)."""
    key = (value.low, value.high, 'range') if isinstance(value, Range) else (type(value), value)
    try:
        cached = memo.get(key)
    except TypeError:  # an unhashable value: compute it every time
        return _code_bounds(value, encoder)
    if cached is None:
        cached = memo[key] = _code_bounds(value, encoder)
    return cached


def _midpoint(value):
    if isinstance(value, Range):
        try:
            return (float(value.low) + float(value.high)) / 2.0
        except (TypeError, ValueError):
            return np.nan
    return value


class LibraryPlanner(Planner):
    """Replay a fitted library; hand cells it cannot produce to a fallback planner.

    While the pool is short of its target, the planner draws library proposals at random in
    proportion to ``count * selected / accepted`` (so that the *valid* records follow what
    calibration kept at fit time). Once the pool is full, each deficit cell (anchor) is filled
    with library proposals that can produce it, drawn in proportion to their fit-time counts.
    A cell no library proposal can produce is *lacking*: it goes to ``fallback`` when one is
    given, otherwise it is left to the calibration.

    Args:
        library (list[dict]):
            From :func:`library_from_result`.
        fallback (Planner, callable or None):
            The planner used for lacking cells (the synthesizer's own planner), or a
            function returning it (called on first need, so no LLM client is built when the
            library suffices).
        index_cache (dict or None):
            Where to keep the library's compatibility index between runs (the synthesizer's
            own dict, so repeated ``sample`` calls build it once). Entries are keyed by the
            encodings they were built for, so a changed spec never reuses a stale index.
    """

    name = 'library'
    uses_llm = False

    def __init__(self, library, fallback=None, index_cache=None):
        self.library = [entry for entry in library if entry.get('accepted', 0) > 0]
        self.fallback = fallback
        self.index_cache = index_cache
        self.lacking = set()
        self.fallback_calls = 0
        self.fallback_proposals = 0
        self._index = None
        # Entry index -> its values, converted once: the loop never mutates a proposal's
        # assignments, so the proposals drawn from one entry can share them.
        self._values: dict[int, tuple] = {}
        counts = np.array([entry['count'] for entry in self.library], dtype=float)
        accepted = np.array([entry['accepted'] for entry in self.library], dtype=float)
        selected = np.array([entry.get('selected', 0) for entry in self.library], dtype=float)
        self._draw_weights = counts
        fill = counts * selected / np.maximum(accepted, 1.0)
        self._fill_weights = fill if fill.sum() > 0 else counts

    # ------------------------------------------------------------------ compatibility index
    @staticmethod
    def _encoding_key(state):
        """What the index depends on besides the library: the encoders of both tables."""
        parts = []
        for table in (state.table, state.child_table):
            if table is None:
                continue
            for column, encoder in state.encodings[table].encoders.items():
                parts.append((
                    table, column, encoder.kind, repr(encoder.categories),
                    None if encoder.edges is None else encoder.edges.tobytes(),
                    None if encoder.values is None else encoder.values.tobytes(),
                    encoder.minimum, encoder.maximum, repr(encoder.derived),
                ))
        return hash(tuple(parts))

    def _build_index(self, state):
        key = None
        if self.index_cache is not None:
            key = (id(self.library[0]) if self.library else None, len(self.library),
                   self._encoding_key(state))
            cached = self.index_cache.get(key)
            if cached is not None:
                self._index = cached
                return
        self._build_index_now(state)
        if key is not None:
            # One index per library and encoding (a relational tree has one per edge).
            if len(self.index_cache) >= 16:
                self.index_cache.clear()
            self.index_cache[key] = self._index

    def _build_index_now(self, state):
        memo = {}
        parent = state.encodings[state.table]
        index = {'parent': {}, 'child': {}, 'owner': None}
        assignments = [
            {k: value_from_json(v) for k, v in entry['assignments'].items()}
            for entry in self.library
        ]
        derived = {}
        if state.child_table is not None:
            derived = self._derived_codes(state, parent)
        for column, encoder in parent.encoders.items():
            if not encoder.is_encoded:
                continue
            if column in derived:
                index['parent'][column] = derived[column]
                continue
            bounds = np.array([
                _memo_code_bounds(memo, item[column], encoder) if column in item
                else (0, encoder.num_codes)
                for item in assignments
            ], dtype=np.int64).reshape(-1, 2)
            memo.clear()
            index['parent'][column] = bounds
        if state.child_table is not None:
            child = state.encodings[state.child_table]
            owners = []
            rows = []
            for position, entry in enumerate(self.library):
                for person in entry.get('children') or []:
                    owners.append(position)
                    rows.append({k: value_from_json(v) for k, v in person.items()})
            index['owner'] = np.asarray(owners, dtype=np.int64)
            for column, encoder in child.encoders.items():
                if not encoder.is_encoded:
                    continue
                bounds = np.array([
                    _memo_code_bounds(memo, row[column], encoder) if column in row
                    else (0, encoder.num_codes)
                    for row in rows
                ], dtype=np.int64).reshape(-1, 2)
                memo.clear()
                index['child'][column] = bounds
        self._index = index

    def _derived_codes(self, state, parent):
        """Codes of the parent's derived columns on one representative draw per household."""
        from sdv_llmsynthor.core.aggregate import compute_derived_columns

        definitions = {name: encoder.derived for name, encoder in parent.encoders.items()
                       if encoder.derived is not None and encoder.is_encoded}
        if not definitions:
            return {}
        child_columns = list(state.encodings[state.child_table].encoders)
        rows = []
        owners = []
        for position, entry in enumerate(self.library):
            for person in entry.get('children') or []:
                values = {k: _midpoint(value_from_json(v)) for k, v in person.items()}
                rows.append({column: values.get(column, np.nan) for column in child_columns})
                owners.append(position)
        frame = pd.DataFrame(rows, columns=child_columns)
        try:
            values = compute_derived_columns(definitions, frame, np.asarray(owners, dtype=np.int64),
                                             len(self.library))
        except Exception:  # noqa: BLE001 - unknown derived values stay unconstrained
            return {}
        out = {}
        for name in values.columns:
            codes = parent.encoders[name].encode(values[name])
            out[name] = np.stack([codes, codes + 1], axis=1).astype(np.int64)
            out[name][codes < 0] = (-1, -1)
        return out

    def compatible(self, anchor, state) -> np.ndarray:
        """Boolean mask of the library entries that can produce the anchor's cell."""
        if self._index is None:
            self._build_index(state)
        size = len(self.library)
        if anchor.table == state.table:
            mask = np.ones(size, dtype=bool)
            for column, (start, stop) in anchor.fixed_codes.items():
                bounds = self._index['parent'].get(column)
                if bounds is None:
                    continue
                mask &= (bounds[:, 0] < stop) & (bounds[:, 1] > start)
            return mask
        owners = self._index['owner']
        if owners is None or len(owners) == 0:
            return np.zeros(size, dtype=bool)
        child_mask = np.ones(len(owners), dtype=bool)
        for column, (start, stop) in anchor.fixed_codes.items():
            bounds = self._index['child'].get(column)
            if bounds is None:
                continue
            child_mask &= (bounds[:, 0] < stop) & (bounds[:, 1] > start)
        return np.bincount(owners[child_mask], minlength=size) > 0

    # ------------------------------------------------------------------ proposals
    def _draw(self, weights, mask, total, rng, anchor_id=None):
        if total <= 0:
            return []
        chosen = np.flatnonzero(mask & (weights > 0))
        if len(chosen) == 0:
            return []
        probabilities = weights[chosen] / weights[chosen].sum()
        counts = rng.multinomial(int(total), probabilities)
        proposals = []
        for i, c in zip(chosen.tolist(), counts.tolist()):
            if c <= 0:
                continue
            values = self._values.get(i)
            if values is None:
                values = self._values[i] = _entry_values(self.library[i])
            proposals.append(_entry_proposal(self.library[i], c, anchor_id, values))
        return proposals

    def propose(self, anchors, state):
        """Draw library proposals for the pool, or for the anchors once the pool is full."""
        if not self.library:
            return self._fallback(list(anchors), state)
        everything = np.ones(len(self.library), dtype=bool)
        if state.pool_rows < state.pool_target:
            budget = min(int(state.batch_rows), int(state.pool_target - state.pool_rows))
            return self._draw(self._fill_weights, everything, max(budget, 1), state.rng)

        proposals = []
        lacking = []
        for anchor in anchors:
            if anchor.is_fill:
                proposals += self._draw(self._fill_weights, everything, anchor.records,
                                        state.rng)
                continue
            mask = self.compatible(anchor, state)
            if not mask.any():
                lacking.append(anchor)
                self.lacking.add((anchor.statistic, anchor.cell))
                continue
            if anchor.table == state.table:
                units = int(anchor.records)
            else:
                units = int(max(1, round(anchor.units)))
            proposals += self._draw(self._draw_weights, mask, units, state.rng,
                                    anchor_id=anchor.anchor_id)
        return proposals + self._fallback(lacking, state)

    def _fallback(self, anchors, state):
        if not anchors or self.fallback is None:
            return []
        if not isinstance(self.fallback, Planner):
            # A factory: the fallback (possibly an LLM client) is only built when needed.
            self.fallback = self.fallback()
            if self.fallback is None:
                return []
        before = state.usage.llm_calls
        proposals = list(self.fallback.propose(anchors, state) or [])
        self.fallback_calls += state.usage.llm_calls - before
        self.fallback_proposals += len(proposals)
        return proposals


# ---------------------------------------------------------------------- reports
def run_report_from_result(result, phase='fit') -> dict[str, Any]:
    """The parts of a run worth keeping after ``fit`` (no record is kept).

    Args:
        result (SynthesisResult):
            The run.
        phase (str):
            ``'fit'`` or ``'sample'``.

    Returns:
        dict
    """
    history = pd.DataFrame([
        {key: value for key, value in entry.items() if key != 'tvd'} for entry in result.history
    ])
    calibration = None
    if result.calibration is not None:
        cal = result.calibration
        calibration = {
            'method': cal.method, 'objective_before': float(cal.objective_before),
            'objective_after': float(cal.objective_after), 'swaps': int(cal.swaps),
            'seconds': float(cal.seconds), 'stopped_by': cal.stopped_by,
            'num_types': int(cal.num_types),
        }
    statistics = pd.DataFrame([
        {'table': item.statistic.table, 'statistic': item.label, 'tvd': float(item.tvd),
         'max_abs_error': float(item.max_abs_error)}
        for item in result.discrepancy.statistics
    ], columns=['table', 'statistic', 'tvd', 'max_abs_error'])
    return {
        'phase': phase,
        'history': history,
        'rejections': result.rejections.copy(),
        'unmet': result.unmet.copy() if result.unmet is not None else pd.DataFrame(),
        'statistics': statistics,
        'usage': dict(result.usage or {}),
        'stopped_by': result.stopped_by,
        'pool_units': int(result.pool_units),
        'calibration': calibration,
        'warnings': list(getattr(result.report, 'warnings', []) or []),
    }


def merge_usage(total: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    """Add one run's LLM usage to a running total.

    Args:
        total (dict or None):
            The total so far.
        usage (dict or None):
            ``UsageLedger.as_dict()`` of a run.

    Returns:
        dict
    """
    out = {'llm_calls': 0, 'prompt_tokens': 0, 'completion_tokens': 0, 'cached_calls': 0,
           'discarded': {}}
    for source in (total or {}), (usage or {}):
        for key in ('llm_calls', 'prompt_tokens', 'completion_tokens', 'cached_calls'):
            out[key] += int(source.get(key, 0) or 0)
        for reason, count in (source.get('discarded') or {}).items():
            out['discarded'][reason] = out['discarded'].get(reason, 0) + int(count)
    return out


# ---------------------------------------------------------------------- output formatting
def learn_bounds(frame: pd.DataFrame, table_metadata: dict[str, Any]) -> dict[str, dict]:
    """Min, max and decimals of every numerical column (aggregates only, for formatting).

    Args:
        frame (pandas.DataFrame):
            Real rows.
        table_metadata (dict):
            The table's metadata dict.

    Returns:
        dict[str, dict]
    """
    bounds = {}
    for column, column_meta in table_metadata.get('columns', {}).items():
        if column_meta.get('sdtype') != 'numerical' or column not in frame.columns:
            continue
        numbers = pd.to_numeric(frame[column], errors='coerce').dropna()
        if numbers.empty:
            continue
        decimals = 0
        values = numbers.to_numpy(dtype=float)
        for digits in range(0, 7):
            if np.allclose(values, np.round(values, digits), rtol=0, atol=1e-9):
                decimals = digits
                break
        else:
            decimals = None
        bounds[column] = {'min': float(values.min()), 'max': float(values.max()),
                          'decimals': decimals}
    return bounds


def _fake_values(sdtype, column, num_rows, locales):
    try:
        from rdt.transformers.pii.anonymization import get_anonymized_transformer

        transformer = get_anonymized_transformer(sdtype, {'locales': locales})
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            transformer.fit(pd.DataFrame({column: pd.Series([], dtype=object)}), column)
            transformer.reset_randomization()
            return transformer.reverse_transform(pd.DataFrame(index=range(num_rows)))[column]
    except Exception:  # noqa: BLE001 - unknown sdtype: leave the column empty
        return None


def _is_integer_representation(column_meta):
    representation = str(column_meta.get('computer_representation', ''))
    return representation.startswith(('Int', 'UInt'))


def format_table(frame: pd.DataFrame, table_metadata: dict[str, Any], bounds=None,
                 enforce_rounding=True, enforce_min_max_values=True, locales=('en_US',),
                 keys=None) -> pd.DataFrame:
    """Give a synthetic table the columns, dtypes, rounding and ranges its metadata says.

    Args:
        frame (pandas.DataFrame):
            The records (metadata columns, in order).
        table_metadata (dict):
            The table's metadata dict.
        bounds (dict or None):
            From :func:`learn_bounds` (when the synthesizer saw real rows).
        enforce_rounding (bool):
            Round numerical columns to their decimals.
        enforce_min_max_values (bool):
            Clip numerical columns to the metadata's (or the real rows') range.
        locales (sequence):
            Faker locales for PII columns.
        keys (set or None):
            Columns already holding consistent keys (primary and foreign keys) to keep as is.

    Returns:
        pandas.DataFrame
    """
    bounds = bounds or {}
    keys = set(keys or ())
    out = {}
    num_rows = len(frame)
    for column, column_meta in table_metadata.get('columns', {}).items():
        if column in frame.columns:
            values = frame[column].reset_index(drop=True)
        else:
            values = pd.Series([None] * num_rows, dtype=object)
        sdtype = column_meta.get('sdtype')
        if column in keys:
            out[column] = values
            continue
        if sdtype == 'id':
            if values.isna().all():
                values = pd.Series(np.arange(num_rows, dtype=np.int64))
            out[column] = values
        elif sdtype == 'numerical':
            numbers = pd.to_numeric(values, errors='coerce').astype(float)
            learned = bounds.get(column, {})
            low = column_meta.get('range_min', learned.get('min'))
            high = column_meta.get('range_max', learned.get('max'))
            if enforce_min_max_values and (low is not None or high is not None):
                numbers = numbers.clip(lower=low, upper=high)
            decimals = column_meta.get('decimal_places', learned.get('decimals'))
            if enforce_rounding and decimals is not None:
                numbers = numbers.round(int(decimals))
            integer = _is_integer_representation(column_meta) or (
                enforce_rounding and decimals == 0)
            if integer:
                numbers = numbers.round(0)
                numbers = (numbers.astype(np.int64) if not numbers.isna().any()
                           else numbers.astype('Int64'))
            out[column] = numbers
        elif sdtype == 'boolean':
            if values.isna().any():
                out[column] = values.map(lambda v: v if pd.isna(v) else _to_bool(v)).astype(
                    object)
            else:
                out[column] = values.map(_to_bool).astype(bool)
        elif sdtype in ('categorical', 'datetime'):
            out[column] = values
        else:
            if values.isna().all() and num_rows:
                faked = _fake_values(sdtype, column, num_rows, list(locales or ['en_US']))
                if faked is not None:
                    values = faked.reset_index(drop=True)
            out[column] = values
    return pd.DataFrame(out, columns=list(table_metadata.get('columns', {})))


def _to_bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ('true', '1', 'yes')
    return bool(value)
