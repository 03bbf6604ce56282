"""Tests of the mobility what-if helpers (``evaluation/mobility.py``, imported from the repo)."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.llm.testing import ScriptedClient
from sdv_llmsynthor.planners.base import Range

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def mobility():
    sys.path.insert(0, str(REPOSITORY_ROOT))
    try:
        yield importlib.import_module('evaluation.mobility')
    finally:
        sys.path.remove(str(REPOSITORY_ROOT))


@pytest.fixture(scope='module')
def zones(mobility):
    return [f'TAZ {first}-{last}' for first, last in mobility.ZONE_GROUPS]


def _trips(zones, num_rows=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'trip_id': np.arange(num_rows),
        'departure_time': np.round(rng.uniform(0, 23.9, num_rows), 2),
        'origin_zone': rng.choice(zones, num_rows),
        'destination_zone': rng.choice(zones, num_rows),
        'mode': rng.choice(['Walk', 'Bike', 'Drive alone'], num_rows),
        'purpose': rng.choice(['Home', 'Work', 'Social'], num_rows),
    })


def _spec(mobility, trips):
    metadata = Metadata.load_from_dict(mobility.mobility_metadata())
    return mobility.build_spec(trips, metadata, min_cell=2), metadata


def _instance(schema, zone):
    """A reply valid under ``schema``: first enum values, except ``zone`` for destinations."""
    if 'enum' in schema:
        values = schema['enum']
        return zone if zone in values and len(values) > 1 else values[0]
    if 'const' in schema:
        return schema['const']
    for key in ('anyOf', 'oneOf'):
        if key in schema:
            return _instance(schema[key][0], zone)
    kind = schema.get('type')
    if isinstance(kind, list):
        kind = next(k for k in kind if k != 'null')
    if kind == 'object':
        properties = schema.get('properties', {})
        return {name: _instance(properties[name], zone)
                for name in schema.get('required', list(properties))}
    if kind == 'array':
        return [_instance(schema.get('items', {}), zone)
                for _ in range(max(int(schema.get('minItems', 1)), 1))]
    if kind in ('number', 'integer'):
        return schema.get('minimum', 1)
    if kind == 'boolean':
        return True
    return 'x'


def test_relax_for_event__drops_evening_cells_and_marginals(mobility, zones):
    """The evening cells of the joints and the destination and purpose marginals are dropped."""
    # Setup
    spec, _ = _spec(mobility, _trips(zones))

    # Run
    relaxed, dropped = mobility.relax_for_event(spec)

    # Assert
    names = [statistic.name for statistic in relaxed.tables['trips'].statistics]
    assert 'destination_zone' not in names
    assert 'purpose' not in names
    assert 'departure_time' in names
    assert 'origin_zone' in names
    for statistic in relaxed.tables['trips'].statistics:
        if statistic.is_joint:
            position = list(statistic.columns).index('departure_time')
            keys = {tuple(float(v) for v in cell.key[position]) for cell in statistic.cells}
            assert (17.0, 20.0) not in keys
            assert (14.0, 17.0) in keys
            assert statistic.complete is False
    assert len(dropped) == 4
    assert len(spec.tables['trips'].statistics) == len(names) + 2


def test_evening_router__routes_evening_anchors_until_budget(mobility, zones):
    """Evening anchors go to the LLM planner while budget remains; the others never do."""
    # Setup
    class Recorder:
        client = None

        def __init__(self):
            self.seen = []

        def propose(self, anchors, state):
            self.seen.append(list(anchors))
            return []

    class Anchor:
        def __init__(self, fixed):
            self.fixed = fixed

    class Usage:
        total_tokens = 0

    class State:
        usage = Usage()

    recorder = Recorder()
    router = mobility.EveningRouter(recorder, token_budget=100)
    router.statistical = Recorder()
    evening = Anchor({'departure_time': Range(17.0, 20.0)})
    morning = Anchor({'departure_time': Range(6.0, 9.0)})
    free = Anchor({'origin_zone': zones[0]})
    state = State()

    # Run
    router.propose([evening, morning, free], state)
    state.usage.total_tokens = 100
    router.propose([evening], state)

    # Assert
    assert recorder.seen == [[evening]]
    assert router.statistical.seen == [[morning, free], [evening]]
    assert router.llm_anchors == 1
    assert router.statistical_anchors == 3


def test_llm_written_share__counts_selected_evening_records(mobility, zones):
    """Only selected records of the source's evening proposals count."""
    # Setup
    proposals = pd.DataFrame({
        'source': ['anchored', 'anchored', 'anchored', 'statistical'],
        'selected': [3, 1, 5, 7],
        'assignments': [
            {'departure_time': Range(17.0, 20.0), 'destination_zone': mobility.EVENT_ZONE},
            {'departure_time': Range(17.0, 20.0), 'destination_zone': zones[3]},
            {'departure_time': Range(9.0, 12.0), 'destination_zone': mobility.EVENT_ZONE},
            {'departure_time': Range(17.0, 20.0), 'destination_zone': mobility.EVENT_ZONE},
        ],
    })

    # Run
    records, share = mobility.llm_written_share(proposals)

    # Assert
    assert records == 4
    assert share == pytest.approx(0.75)


def test_run_what_if_llm__scripted_llm_moves_evening_flows(mobility, zones):
    """A scripted LLM sending every evening completion to the event zone raises its share."""
    # Setup
    trips = _trips(zones, 300)
    spec, metadata = _spec(mobility, trips)
    relaxed, _ = mobility.relax_for_event(spec)
    zone = mobility.EVENT_ZONE
    client = ScriptedClient(lambda messages, schema, params: _instance(schema, zone))

    # Run
    synthetic, info = mobility.run_what_if_llm(mobility.what_if_spec(relaxed), metadata, 300,
                                               client, token_budget=50_000, max_iterations=6)

    # Assert
    assert len(synthetic) == 300
    assert info['llm_calls'] >= 1
    assert info['llm_records'] > 0
    assert info['llm_share'] == pytest.approx(1.0)
    assert list(info['llm_destinations']) == [zone]
    assert mobility.evening_inflow_share(synthetic) > mobility.evening_inflow_share(trips)


def test_od_shift__counts_moved_evening_trips_only(mobility, zones):
    """Moving one evening trip to another destination shifts 1/n in the evening, 0 elsewhere."""
    # Setup
    baseline = pd.DataFrame({
        'departure_time': [18.0, 18.5, 8.0, 12.5],
        'origin_zone': [zones[0]] * 4,
        'destination_zone': [zones[1]] * 4,
    })
    what_if = baseline.copy()
    what_if.loc[0, 'destination_zone'] = zones[0]

    # Run
    evening = mobility.od_shift(baseline, what_if)
    other = mobility.od_shift(baseline, what_if, evening=False)

    # Assert
    assert evening == pytest.approx(0.25)
    assert other == 0.0
