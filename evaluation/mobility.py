"""Mobility trips experiment (LLMSynthor paper: mobility task, Figures 3, 16, 17).

Data: the PSRC 2017 household travel survey trips
(``../shared/data/mobility/psrc_hts2017_trips_od.csv``, 5,316 trips), recoded by
:func:`evaluation.make_example_specs.load_mobility_trips` (departure hour, eight zone groups of
TAZ numbers, mode and destination-purpose labels).

Targets (derived from the trips with :meth:`MacroSpec.from_data`):

- marginals of every column (departure time on the paper's bins 0, 6, 9, 12, 14, 17, 20, 24);
- departure time bin x purpose (complete);
- origin zone group x destination zone group x departure bin (partial: only cells with at
  least ``--min-cell`` trips are listed, as in ``specs/examples/mobility.json``);
- mode: marginal only. Mode by distance band is not derivable: the file's ``travdist`` is
  always -1 and TAZ ids carry no coordinates.

LLMSynthor (statistical planner, no LLM) synthesises as many trips as the survey has. The
script reports per-column TVDs, the joint TVDs of the targets and writes heatmaps (target vs
synthetic) of departure x purpose and of the origin x destination flows per time bin.

What-if (paper: a context line changes the flows). :func:`what_if_spec` returns a copy of the
spec whose context carries an extra line (by default a large evening event in one zone group).
Only an LLM planner can read it; the statistical planner ignores text, so it is run as a
*control*, where the shift of the evening inflow to the event zone must be zero.

The LLM what-if runs the anchored planner (embedded SmolLM2-135M through llama.cpp, one thread;
and an OpenAI-compatible endpoint when ``LLMSYNTHOR_BASE_URL`` is set) twice on the same
*relaxed* spec (:func:`relax_for_event`), once without and once with the context line, same
seed and token budget: the difference is attributable to the line alone. The relaxation drops
every target that would pin the evening inflow to the event zone, since the engine otherwise
forces the flows back to the survey: the 17-20 h cells of origin x destination x time and of
time x purpose, and the destination and purpose marginals (with the other hours' cells still
pinned, these two would fix the evening row by subtraction). Everything else is kept. The LLM
completes the evening anchors (:class:`EveningRouter`); the statistical planner the others, in
both runs alike.

Run from the repository root::

    python -m evaluation.mobility --quick     # fewer iterations, smaller LLM budget
    python -m evaluation.mobility             # LLM runs within about 10 minutes each
    python -m evaluation.mobility --no-llm    # statistical planner only
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import pandas as pd

from evaluation.make_example_specs import (
    DEFAULT_MOBILITY_CSV,
    DEPARTURE_BINS,
    MOBILITY_CONTEXT,
    ZONE_GROUPS,
    load_mobility_trips,
    mobility_metadata,
)
from sdv_llmsynthor.evaluation.metrics import joint_tvd, tvd

DEFAULT_OUTPUT = Path('evaluation') / 'results'
TIME_LABELS = ['0-6', '6-9', '9-12', '12-14', '14-17', '17-20', '20-24']
EVENT_BIN = (17.0, 20.0)
WHAT_IF_TOKEN_BUDGET = 8_000
"""Tokens (prompt plus completion) each full-mode LLM what-if run may spend (about 10 minutes of
the embedded model on one loaded core)."""
QUICK_WHAT_IF_TOKEN_BUDGET = 2_500
EVENT_ZONE = 'TAZ {}-{}'.format(*ZONE_GROUPS[0])
EVENT_LINE = (
    'What-if: a large evening event (a stadium concert with 60,000 visitors) takes place in zone '
    f'group {EVENT_ZONE} from 19:00 to 23:00; many more trips than usual go to {EVENT_ZONE} '
    'between 17:00 and 20:00, for social and recreation purposes.'
)


def build_spec(trips: pd.DataFrame, metadata, min_cell: int = 5):
    """Derive the mobility spec (marginals, time x purpose, partial origin x destination x time).

    Args:
        trips (pandas.DataFrame):
            The recoded trips.
        metadata (sdv.metadata.Metadata):
            Their metadata.
        min_cell (int):
            Origin/destination/time cells with fewer trips are left unconstrained.

    Returns:
        MacroSpec
    """
    from sdv_llmsynthor.spec import MacroSpec

    spec = MacroSpec.from_data(
        trips, metadata, table_name='trips', name='mobility', context=MOBILITY_CONTEXT,
        num_sub_bins=1, bins={'departure_time': DEPARTURE_BINS},
        joints=[['departure_time', 'purpose'],
                ['origin_zone', 'destination_zone', 'departure_time']],
    )
    table = spec.tables['trips']
    odt = table.statistics[-1]
    odt.cells = [cell for cell in odt.cells
                 if cell.value * table.num_rows >= min_cell - 1e-9]
    odt.complete = False
    return spec


def what_if_spec(spec, line: str = EVENT_LINE):
    """A copy of ``spec`` whose context ends with ``line`` (the what-if scenario).

    Args:
        spec (MacroSpec):
            The baseline spec (left unchanged).
        line (str):
            The scenario text.

    Returns:
        MacroSpec
    """
    changed = copy.deepcopy(spec)
    changed.context = f'{changed.context or ""}\n{line}'.strip()
    return changed


def time_bin(hours: pd.Series) -> pd.Series:
    """Label of the paper's departure bin of each departure hour."""
    return pd.cut(hours, DEPARTURE_BINS, right=False, labels=TIME_LABELS).astype(str)


def evening_inflow_share(trips: pd.DataFrame, zone: str = EVENT_ZONE) -> float:
    """Share of the 17-20 h trips whose destination is ``zone``."""
    evening = trips[time_bin(trips['departure_time']) == '17-20']
    if evening.empty:
        return float('nan')
    return float((evening['destination_zone'] == zone).mean())


def _is_bin(value, bounds=EVENT_BIN) -> bool:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = value
    elif hasattr(value, 'low') and hasattr(value, 'high'):
        low, high = value.low, value.high
    else:
        return False
    try:
        return (float(low), float(high)) == (float(bounds[0]), float(bounds[1]))
    except (TypeError, ValueError):
        return False


def relax_for_event(spec, bounds=EVENT_BIN):
    """A copy of ``spec`` without the targets that pin the inflows of the ``bounds`` time bin.

    Dropped: the cells of that departure bin in every joint with ``departure_time`` (they become
    partial), and the ``destination_zone`` and ``purpose`` marginals (with the other bins' cells
    kept, a marginal would fix the evening row by subtraction). Kept: every other cell, and the
    departure time, origin and mode marginals.

    Args:
        spec (MacroSpec):
            The survey spec (left unchanged).
        bounds (tuple[float, float]):
            The departure bin the scenario changes.

    Returns:
        tuple[MacroSpec, list[str]]:
            The relaxed spec and a description of each thing dropped.
    """
    relaxed = copy.deepcopy(spec)
    table = relaxed.tables['trips']
    kept, dropped = [], []
    for statistic in table.statistics:
        if tuple(statistic.columns) in (('destination_zone',), ('purpose',)):
            dropped.append(f'marginal `{statistic.name}`')
            continue
        if statistic.is_joint and 'departure_time' in statistic.columns:
            position = list(statistic.columns).index('departure_time')
            before = len(statistic.cells)
            statistic.cells = [cell for cell in statistic.cells
                               if not _is_bin(cell.key[position], bounds)]
            if len(statistic.cells) < before:
                statistic.complete = False
                dropped.append(f'{before - len(statistic.cells)} cells of `{statistic.name}` '
                               f'at departure [{bounds[0]:g}, {bounds[1]:g})')
        kept.append(statistic)
    table.statistics = kept
    return relaxed, dropped


def _planner_base():
    from sdv_llmsynthor.planners.base import Planner

    return Planner


class EveningRouter(_planner_base()):
    """Send the anchors of one departure bin to an LLM planner, the others to the statistical one.

    The LLM's token budget is spent where the context line can act (the relaxed evening
    anchors); the rest of the day, pinned by the kept targets, is completed by the statistical
    planner in the baseline and in the what-if alike. Once ``token_budget`` tokens are spent, the
    statistical planner completes every anchor.

    Args:
        llm_planner (Planner):
            An LLM planner (e.g. ``AnchoredLLMPlanner``).
        token_budget (int or None):
            Prompt plus completion tokens the LLM may spend. None: no limit.
        bounds (tuple[float, float]):
            The departure bin whose anchors go to the LLM.
    """

    name = 'evening-router'
    uses_llm = True

    def __init__(self, llm_planner, token_budget=None, bounds=EVENT_BIN):
        from sdv_llmsynthor.planners.statistical import StatisticalPlanner

        self.llm_planner = llm_planner
        self.client = getattr(llm_planner, 'client', None)
        self.token_budget = token_budget
        self.bounds = bounds
        self.statistical = StatisticalPlanner()
        self.llm_anchors = 0
        self.statistical_anchors = 0

    def propose(self, anchors, state):
        """Route each anchor (see the class docstring) and return every proposal."""
        spent = state.usage.total_tokens
        open_budget = self.token_budget is None or spent < self.token_budget
        routed = [a for a in anchors
                  if open_budget and _is_bin(a.fixed.get('departure_time'), self.bounds)]
        others = [a for a in anchors if not any(a is r for r in routed)]
        proposals = []
        if routed:
            self.llm_anchors += len(routed)
            proposals += list(self.llm_planner.propose(routed, state) or [])
        if others:
            self.statistical_anchors += len(others)
            proposals += list(self.statistical.propose(others, state) or [])
        return proposals

    def get_state(self):
        """Return both planners' state (for checkpoints)."""
        return {'llm': self.llm_planner.get_state(), 'statistical': self.statistical.get_state(),
                'llm_anchors': self.llm_anchors, 'statistical_anchors': self.statistical_anchors}

    def set_state(self, state):
        """Restore what :meth:`get_state` returned."""
        self.llm_planner.set_state(state.get('llm', {}))
        self.statistical.set_state(state.get('statistical', {}))
        self.llm_anchors = int(state.get('llm_anchors', 0))
        self.statistical_anchors = int(state.get('statistical_anchors', 0))


def llm_evening_destinations(proposals: pd.DataFrame, source='anchored') -> dict:
    """Calibrated evening records written by ``source`` proposals, per destination zone group.

    Args:
        proposals (pandas.DataFrame):
            A run's proposals library (``SynthesisResult.proposals``).
        source (str):
            The proposals' ``source``.

    Returns:
        dict[str, int]:
            Records per destination, largest first.
    """
    counts = {}
    if proposals is None or len(proposals) == 0:
        return counts
    for row in proposals.itertuples(index=False):
        if row.source != source or not row.selected:
            continue
        assignments = dict(row.assignments)
        if _is_bin(assignments.get('departure_time')):
            zone = str(assignments.get('destination_zone'))
            counts[zone] = counts.get(zone, 0) + int(row.selected)
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def llm_written_share(proposals: pd.DataFrame, zone: str = EVENT_ZONE, source='anchored'):
    """Among the calibrated records written by ``source`` proposals for the evening bin.

    Args:
        proposals (pandas.DataFrame):
            A run's proposals library (``SynthesisResult.proposals``).
        zone (str):
            The event zone group.
        source (str):
            The proposals' ``source``.

    Returns:
        tuple[int, float]:
            Calibrated evening records from ``source`` proposals, and the share of them going to
            ``zone`` (NaN when there are none).
    """
    if proposals is None or len(proposals) == 0:
        return 0, float('nan')
    total = to_zone = 0
    for row in proposals.itertuples(index=False):
        if row.source != source or not row.selected:
            continue
        assignments = dict(row.assignments)
        if not _is_bin(assignments.get('departure_time')):
            continue
        total += int(row.selected)
        if assignments.get('destination_zone') == zone:
            to_zone += int(row.selected)
    return total, (to_zone / total if total else float('nan'))


def run_what_if_llm(spec, metadata, num_rows: int, client, token_budget: int,
                    max_iterations: int, seed: int = 0):
    """Synthesise trips with the anchored planner on the evening anchors; returns (rows, info).

    Args:
        spec (MacroSpec):
            The (relaxed) spec, with or without the context line.
        metadata (sdv.metadata.Metadata):
            The trips' metadata.
        num_rows (int):
            Trips to synthesise.
        client (LLMClient):
            The LLM.
        token_budget (int):
            Tokens the LLM may spend.
        max_iterations (int):
            Iteration budget of the loop.
        seed (int):
            Seed of the loop and the LLM calls.

    Returns:
        tuple[pandas.DataFrame, dict]
    """
    from sdv_llmsynthor.core.loop import SynthesisLoop
    from sdv_llmsynthor.planners.anchored import AnchoredLLMPlanner

    # Fresh completions each iteration (no reuse of a stored anchor's completions), so the
    # budget buys diverse evening records rather than one call replayed.
    router = EveningRouter(AnchoredLLMPlanner(client, reuse_completions=False), token_budget)
    start = time.perf_counter()
    result = SynthesisLoop(spec, metadata, router, num_rows=num_rows,
                           max_iterations=max_iterations, seed=seed, progress=False).run()
    llm_records, llm_share = llm_written_share(result.proposals)
    usage = result.usage or {}
    info = {'seconds': time.perf_counter() - start, 'iterations': len(result.history),
            'stopped_by': result.stopped_by, 'unmet': len(result.unmet),
            'llm_calls': int(usage.get('llm_calls', 0) or 0),
            'tokens': int(usage.get('prompt_tokens', 0) or 0)
            + int(usage.get('completion_tokens', 0) or 0),
            'discarded': dict(usage.get('discarded', {}) or {}),
            'llm_anchors': router.llm_anchors, 'llm_records': llm_records,
            'llm_share': llm_share,
            'llm_destinations': llm_evening_destinations(result.proposals)}
    return result.data, info


def shift_standard_error(first: pd.DataFrame, second: pd.DataFrame) -> float:
    """Binomial standard error of the difference of two evening inflow shares.

    It treats trips as independent draws, which understates the noise of records drawn from a
    few LLM completions; read it as a lower bound.
    """
    shares, counts = [], []
    for trips in (first, second):
        evening = trips[time_bin(trips['departure_time']) == '17-20']
        shares.append(float((evening['destination_zone'] == EVENT_ZONE).mean())
                      if len(evening) else float('nan'))
        counts.append(max(len(evening), 1))
    return float(sum(p * (1 - p) / n for p, n in zip(shares, counts)) ** 0.5)


def od_shift(baseline: pd.DataFrame, what_if: pd.DataFrame, evening: bool = True) -> float:
    """Half the summed absolute difference of the origin x destination shares (of all trips).

    Args:
        baseline (pandas.DataFrame):
            Baseline trips.
        what_if (pandas.DataFrame):
            What-if trips.
        evening (bool):
            The 17-20 h bin (True) or every other bin (False).

    Returns:
        float
    """
    labels = ['17-20'] if evening else [label for label in TIME_LABELS if label != '17-20']
    return float(sum(abs(_od(what_if, label) - _od(baseline, label)).values.sum()
                     for label in labels) / 2)


def plot_what_if_difference(baseline: pd.DataFrame, what_if: pd.DataFrame, path: Path,
                            title: str) -> Path:
    """Heatmaps of what-if minus baseline origin x destination flows, one per departure bin."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    differences = [(label, _od(what_if, label) - _od(baseline, label)) for label in TIME_LABELS]
    limit = max(max(abs(d.values).max() for _, d in differences), 1e-6)
    figure, axes = plt.subplots(1, len(TIME_LABELS), figsize=(3 * len(TIME_LABELS), 3.6),
                                constrained_layout=True)
    for axis, (label, difference) in zip(axes, differences):
        image = axis.imshow(difference.values, cmap='RdBu_r', vmin=-limit, vmax=limit)
        axis.set_title(f'{label} h', fontsize=8)
        axis.set_xticks(range(len(ZONE_GROUPS)), [str(g[0]) for g in ZONE_GROUPS], fontsize=5,
                        rotation=90)
        axis.set_yticks(range(len(ZONE_GROUPS)), [str(g[0]) for g in ZONE_GROUPS], fontsize=5)
    figure.suptitle(title + ': what-if minus baseline, origin (rows) x destination (columns) '
                    'zone groups by first TAZ; share of all trips', fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.7)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_llmsynthor(spec, metadata, num_rows: int, max_iterations: int, seed: int = 0):
    """Synthesise ``num_rows`` trips with the statistical planner; returns (rows, info)."""
    from sdv_llmsynthor.core.loop import SynthesisLoop
    from sdv_llmsynthor.planners.statistical import StatisticalPlanner

    start = time.perf_counter()
    result = SynthesisLoop(spec, metadata, StatisticalPlanner(), num_rows=num_rows,
                           max_iterations=max_iterations, seed=seed, progress=False).run()
    info = {'seconds': time.perf_counter() - start, 'iterations': len(result.history),
            'stopped_by': result.stopped_by, 'unmet': len(result.unmet)}
    return result.data, info


def compare(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """TVD per column and per target joint (departure time on the paper's bins)."""
    bins = {'departure_time': DEPARTURE_BINS}
    rows = []
    for column in ['origin_zone', 'destination_zone', 'mode', 'purpose']:
        rows.append((f'TVD {column}', tvd(real[column].fillna('(missing)'),
                                          synthetic[column].fillna('(missing)'))))
    rows.append(('TVD departure bin', joint_tvd(real, synthetic, ['departure_time'], bins)))
    for columns in (['departure_time', 'purpose'],
                    ['origin_zone', 'destination_zone'],
                    ['origin_zone', 'destination_zone', 'departure_time']):
        rows.append(('joint TVD ' + ' x '.join(columns),
                     joint_tvd(real.fillna('(missing)'), synthetic.fillna('(missing)'),
                               columns, bins)))
    return pd.DataFrame(rows, columns=['metric', 'value'])


def _time_purpose(trips: pd.DataFrame) -> pd.DataFrame:
    table = pd.crosstab(time_bin(trips['departure_time']), trips['purpose'].fillna('(missing)'),
                        normalize=True)
    return table.reindex(TIME_LABELS).fillna(0.0)


def _od(trips: pd.DataFrame, label: str) -> pd.DataFrame:
    zones = ['TAZ {}-{}'.format(*group) for group in ZONE_GROUPS]
    subset = trips[time_bin(trips['departure_time']) == label]
    table = pd.crosstab(subset['origin_zone'], subset['destination_zone'])
    table = table.reindex(index=zones, columns=zones).fillna(0.0)
    return table / max(len(trips), 1)


def plot_heatmaps(real: pd.DataFrame, synthetic: pd.DataFrame, output: Path,
                  suffix: str = '') -> list[Path]:
    """Write departure x purpose and origin x destination (per time bin) heatmaps."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    paths = []
    real_tp, synth_tp = _time_purpose(real), _time_purpose(synthetic)
    columns = sorted(set(real_tp.columns) | set(synth_tp.columns))
    real_tp, synth_tp = real_tp.reindex(columns=columns, fill_value=0.0), synth_tp.reindex(
        columns=columns, fill_value=0.0)
    vmax = max(real_tp.values.max(), synth_tp.values.max())
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
    for axis, table, title in zip(axes, (real_tp, synth_tp), ('target (survey)', 'LLMSynthor')):
        image = axis.imshow(table.values, aspect='auto', cmap='viridis', vmin=0, vmax=vmax)
        axis.set_xticks(range(len(columns)), columns, rotation=60, ha='right', fontsize=7)
        axis.set_yticks(range(len(TIME_LABELS)), TIME_LABELS, fontsize=8)
        axis.set_title(f'departure bin x purpose: {title}', fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.8, label='share of trips')
    path = output / f'mobility_time_purpose{suffix}.png'
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)

    figure, axes = plt.subplots(2, len(TIME_LABELS), figsize=(3 * len(TIME_LABELS), 6.4),
                                constrained_layout=True)
    tables = [(label, _od(real, label), _od(synthetic, label)) for label in TIME_LABELS]
    vmax = max(max(r.values.max(), s.values.max()) for _, r, s in tables)
    for column, (label, real_od, synth_od) in enumerate(tables):
        for row, (table, who) in enumerate(((real_od, 'target'), (synth_od, 'LLMSynthor'))):
            axis = axes[row, column]
            image = axis.imshow(table.values, cmap='magma', vmin=0, vmax=vmax)
            axis.set_title(f'{label} h, {who}', fontsize=8)
            axis.set_xticks(range(len(ZONE_GROUPS)), [str(g[0]) for g in ZONE_GROUPS],
                            fontsize=5, rotation=90)
            axis.set_yticks(range(len(ZONE_GROUPS)), [str(g[0]) for g in ZONE_GROUPS],
                            fontsize=5)
    figure.suptitle('origin (rows) x destination (columns) zone groups, by first TAZ; share of '
                    'all trips', fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.6)
    path = output / f'mobility_od_by_time{suffix}.png'
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
    return paths


def _markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    header = '| ' + ' | '.join(map(str, frame.columns)) + ' |'
    lines = [header, '|' + '---|' * len(frame.columns)]
    for _, row in frame.iterrows():
        cells = [f'{v:.{digits}f}' if isinstance(v, float) else str(v) for v in row]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def _llm_backends(seed: int):
    """(label, client factory or None, reason) for the embedded model and the endpoint."""
    from sdv_llmsynthor.llm.local import LocalLlamaClient

    backends = [('anchored, embedded SmolLM2-135M (llama.cpp, 1 thread)',
                 lambda: LocalLlamaClient(seed=seed, n_threads=1), None)]
    if os.environ.get('LLMSYNTHOR_BASE_URL'):
        from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient

        model = os.environ.get('LLMSYNTHOR_MODEL', '(default model)')
        backends.append((f'anchored, endpoint {model}', lambda: OpenAICompatibleClient(), None))
    else:
        backends.append(('anchored, OpenAI-compatible endpoint', None,
                         'not run: LLMSYNTHOR_BASE_URL is not set'))
    return backends


def run_what_if(trips, spec, metadata, args, budget: int, max_iterations: int, suffix: str):
    """The relaxed-spec what-if: statistical control and each LLM backend, baseline vs what-if.

    Returns:
        tuple[list[dict], list[str], list[Path]]:
            One row per run pair, the relaxation's description, the heatmaps written.
    """
    relaxed, dropped = relax_for_event(spec)
    num_rows = args.what_if_trips or len(trips)
    rows, plots = [], []
    base, _ = run_llmsynthor(relaxed, metadata, num_rows, max_iterations, args.seed)
    changed, _ = run_llmsynthor(what_if_spec(relaxed), metadata, num_rows, max_iterations,
                                args.seed)
    rows.append({'run': 'statistical planner, relaxed spec (control)',
                 'baseline': evening_inflow_share(base), 'what_if': evening_inflow_share(changed),
                 'se': shift_standard_error(base, changed)})
    for label, factory, reason in _llm_backends(args.seed):
        if factory is None:
            rows.append({'run': label, 'not_run': reason})
            continue
        print(f'what-if: {label} ...', flush=True)
        try:
            base, base_info = run_what_if_llm(relaxed, metadata, num_rows, factory(), budget,
                                              max_iterations, args.seed)
            changed, info = run_what_if_llm(what_if_spec(relaxed), metadata, num_rows,
                                            factory(), budget, max_iterations, args.seed)
        except Exception as error:  # noqa: BLE001 - a failed backend is reported, not fatal
            rows.append({'run': label, 'not_run': f'failed: {type(error).__name__}: {error}'})
            continue
        rows.append({'run': label, 'baseline': evening_inflow_share(base),
                     'what_if': evening_inflow_share(changed),
                     'se': shift_standard_error(base, changed),
                     'evening_od_shift': od_shift(base, changed),
                     'other_od_shift': od_shift(base, changed, evening=False),
                     'baseline_info': base_info, 'what_if_info': info})
        name = 'embedded' if 'embedded' in label else 'endpoint'
        plots.append(plot_what_if_difference(
            base, changed, args.output / f'mobility_what_if_{name}{suffix}.png', label))
    return rows, dropped, plots


def _what_if_lines(rows, dropped, plots, budget, num_rows, relaxed_share):
    lines = [
        '### LLM what-if on a relaxed spec',
        '',
        'With every survey target in place the engine forces the flows back to the survey '
        '(the control above), so no planner could show a shift. The LLM runs use a relaxed '
        'spec, which drops what pins the evening inflow to the event zone: '
        + '; '.join(dropped) + '. The destination and purpose marginals go too because, with '
        'the other hours\' cells kept, they would fix the evening row by subtraction. '
        'Dropping (rather than down-weighting) leaves the evening destinations to the '
        'planner alone; a down-weighted target would still pull them back towards the survey '
        'and blur what the context line does.',
        '',
        f'Each LLM row is two runs of the anchored planner on the same relaxed spec, seed and '
        f'token budget ({budget:,} tokens per run, {num_rows:,} trips): the baseline without the '
        'context line and the what-if with it, so the shift is attributable to the line, not '
        'to the relaxation. The LLM completes the anchors of the 17-20 h bin (fresh '
        'completions each iteration, no reuse); the statistical planner completes the other '
        'anchors, and every anchor once the budget is spent, in both runs alike. Records are '
        'then calibrated to the kept targets.',
        '',
        '| run | baseline share | what-if share | shift | binomial s.e. | '
        'LLM calls (base / what-if) | tokens | wall s | evening trips from LLM completions '
        '| their share to the zone (base / what-if) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        if 'not_run' in row:
            lines.append(f"| {row['run']} | {row['not_run']} | | | | | | | | |")
            continue
        base_info, info = row.get('baseline_info'), row.get('what_if_info')
        shift = row['what_if'] - row['baseline']
        if base_info is None:
            extra = '| 0 / 0 | 0 | | | |'
        else:
            extra = (f"| {base_info['llm_calls']} / {info['llm_calls']} | "
                     f"{base_info['tokens']:,} / {info['tokens']:,} | "
                     f"{base_info['seconds']:.0f} / {info['seconds']:.0f} | "
                     f"{base_info['llm_records']} / {info['llm_records']} | "
                     f"{base_info['llm_share']:.3f} / {info['llm_share']:.3f} |")
        lines.append(f"| {row['run']} | {row['baseline']:.4f} | {row['what_if']:.4f} | "
                     f"{shift:+.4f} | {row['se']:.4f} {extra}")
    lines += ['', f'Survey share for reference: {relaxed_share:.4f}. The binomial standard error '
              'treats trips as independent; records drawn from a few LLM completions are not, '
              'so it is a lower bound on the noise.']
    for row in rows:
        if row.get('baseline_info') is None:
            continue
        lines += ['', f"{row['run']}: the context line moved {row['evening_od_shift']:.4f} of all "
                  'trips between origin x destination cells of the 17-20 h bin (half the summed '
                  'absolute difference of the shares), against '
                  f"{row['other_od_shift']:.4f} in all the other bins together (which the LLM "
                  'does not write: their difference is the noise of the rest of the run).']
        lines += ['', f"Destinations of the calibrated 17-20 h trips written by the LLM "
                  f"({row['run']}):", '', '| destination | baseline | what-if |', '|---|---|---|']
        base, changed = (row['baseline_info']['llm_destinations'],
                         row['what_if_info']['llm_destinations'])
        for zone in sorted(set(base) | set(changed),
                           key=lambda z: -(base.get(z, 0) + changed.get(z, 0))):
            lines.append(f'| {zone} | {base.get(zone, 0)} | {changed.get(zone, 0)} |')
    if plots:
        lines += ['', 'Heatmaps of the difference (what-if minus baseline) of the origin x '
                  'destination flows per departure bin: ' + ', '.join(f'`{p.name}`' for p in plots)
                  + '.']
    return lines


def main(argv=None) -> None:
    """Run the mobility experiment and write ``evaluation/results/mobility*.md|json|png``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer iterations, smaller LLM token budget')
    parser.add_argument('--csv', type=Path, default=DEFAULT_MOBILITY_CSV)
    parser.add_argument('--output', type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument('--min-cell', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-llm', action='store_true', help='skip the LLM what-if runs')
    parser.add_argument('--token-budget', type=int, default=None,
                        help='tokens per LLM what-if run (default 8,000; 2,500 with --quick)')
    parser.add_argument('--what-if-trips', type=int, default=None,
                        help='trips of the what-if runs (default: as many as the survey)')
    args = parser.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import json

    from sdv.metadata import Metadata

    started_at = time.strftime('%Y-%m-%d %H:%M %Z')
    load = ', '.join(f'{value:.1f}' for value in os.getloadavg())
    args.output.mkdir(parents=True, exist_ok=True)
    metadata = Metadata.load_from_dict(mobility_metadata())
    trips = load_mobility_trips(args.csv)
    spec = build_spec(trips, metadata, args.min_cell)
    max_iterations = 8 if args.quick else 40
    synthetic, info = run_llmsynthor(spec, metadata, len(trips), max_iterations, args.seed)
    metrics = compare(trips, synthetic)
    suffix = '_quick' if args.quick else ''
    plots = plot_heatmaps(trips, synthetic, args.output, suffix)

    control, control_info = run_llmsynthor(what_if_spec(spec), metadata, len(trips),
                                           max_iterations, args.seed)
    base_share = evening_inflow_share(synthetic)
    control_share = evening_inflow_share(control)
    target_share = evening_inflow_share(trips)

    command = 'python -m evaluation.mobility' + ''.join(
        flag for flag, on in ((' --quick', args.quick), (' --no-llm', args.no_llm)) if on)
    if args.token_budget:
        command += f' --token-budget {args.token_budget}'
    if args.what_if_trips:
        command += f' --what-if-trips {args.what_if_trips}'
    lines = [
        f'# Mobility trips (PSRC 2017){" — quick" if args.quick else ""}',
        '',
        f'Generated by `{command}`, started {started_at}, load average then {load} (2 shared '
        f'CPUs; times are noisy). {len(trips):,} survey trips; LLMSynthor (statistical planner, '
        f'no LLM) synthesises '
        f'{len(synthetic):,} trips, seed {args.seed}, at most {max_iterations} iterations: '
        f'{info["iterations"]} iterations, {info["seconds"]:.1f} s, stopped by '
        f'`{info["stopped_by"]}`, {info["unmet"]} statistics not met after calibration.',
        '',
        'Targets: every marginal; departure bin (0, 6, 9, 12, 14, 17, 20, 24 h) x purpose; '
        f'origin x destination zone group x departure bin, partial (cells with >= '
        f'{args.min_cell} trips: {len(spec.tables["trips"].statistics[-1].cells)} cells); '
        'mode marginal only (distance is not in the file: `travdist` = -1, so no mode by '
        'distance band).',
        '',
        '## Distances, synthetic vs survey',
        '',
        _markdown(metrics),
        '',
        'Heatmaps: ' + ', '.join(f'`{p.name}`' for p in plots) + '.',
        '',
        '## What-if (evening event)',
        '',
        f'Context line added to a copy of the spec: "{EVENT_LINE}"',
        '',
        'Measured: the share of the 17-20 h trips whose destination is ' + EVENT_ZONE + '.',
        '',
        '### Full spec, statistical planner (control)',
        '',
        '| run | share of 17-20 h trips going to ' + EVENT_ZONE + ' |',
        '|---|---|',
        f'| survey | {target_share:.4f} |',
        f'| baseline (statistical planner) | {base_share:.4f} |',
        f'| what-if, statistical planner (control) | {control_share:.4f} |',
        '',
        f'Control shift: {control_share - base_share:+.4f} (expected 0: the statistical '
        'planner does not read the context, and every target pins the flows).',
        '',
    ]
    record = {'command': command, 'started': started_at, 'load': load,
              'survey_share': target_share, 'full_spec_baseline': base_share,
              'full_spec_control': control_share}
    if not args.no_llm:
        budget = args.token_budget or (QUICK_WHAT_IF_TOKEN_BUDGET if args.quick
                                       else WHAT_IF_TOKEN_BUDGET)
        rows, dropped, what_if_plots = run_what_if(trips, spec, metadata, args, budget,
                                                   max_iterations, suffix)
        lines += _what_if_lines(rows, dropped, what_if_plots, budget,
                                args.what_if_trips or len(trips), target_share)
        lines.append('')
        record.update({'token_budget': budget, 'relaxation': dropped, 'what_if': rows})
    else:
        lines += ['The LLM what-if was skipped (`--no-llm`).', '']
    path = args.output / f'mobility{suffix}.md'
    path.write_text('\n'.join(lines), encoding='utf-8')
    (args.output / f'mobility{suffix}.json').write_text(
        json.dumps(record, indent=1, default=float) + '\n', encoding='utf-8')
    print('\n'.join(lines))
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
