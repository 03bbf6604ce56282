"""Tests of the planner interface objects and of the statistical planner."""

import numpy as np
import pytest

from sdv_llmsynthor.core.aggregate import StatisticCounts
from sdv_llmsynthor.core.anchors import fill_anchor, select_anchors
from sdv_llmsynthor.core.discrepancy import compute_discrepancy
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.planners import (
    HouseholdProposal,
    PlannerState,
    Proposal,
    Range,
    StatisticalPlanner,
    UsageLedger,
)
from sdv_llmsynthor.spec.model import MacroSpec

METADATA = {
    'tables': {'t': {'columns': {
        'age': {'sdtype': 'numerical'},
        'sex': {'sdtype': 'categorical'},
        'job': {'sdtype': 'categorical'},
    }}},
    'relationships': [],
}


def _spec(job_missing=0.0):
    return MacroSpec.from_dict({
        'spec_version': '1.0',
        'tables': {'t': {
            'num_rows': 1000,
            'columns': {
                'age': {'bins': [0, 20, 60], 'sub_bins': 4},
                'sex': {'categories': ['F', 'M']},
                'job': {'categories': ['A', 'B'], 'missing_proportion': job_missing},
            },
            'statistics': [
                {'name': 'age x sex', 'columns': ['age', 'sex'],
                 'cells': [{'key': [[0, 20], 'F'], 'value': 0.1},
                           {'key': [[0, 20], 'M'], 'value': 0.4},
                           {'key': [[20, 60], 'F'], 'value': 0.5},
                           {'key': [[20, 60], 'M'], 'value': 0.0}]},
                {'name': 'age', 'columns': ['age'],
                 'cells': [{'key': [[0, 5]], 'value': 0.5}, {'key': [[5, 10]], 'value': 0.0},
                           {'key': [[10, 15]], 'value': 0.0},
                           {'key': [[15, 20]], 'value': 0.0},
                           {'key': [[20, 60]], 'value': 0.5}]},
                {'name': 'job', 'columns': ['job'],
                 'cells': [{'key': ['A'], 'value': 0.7 * (1 - job_missing)},
                           {'key': ['B'], 'value': 0.3 * (1 - job_missing)}]},
            ],
        }},
    })


def _state(spec, metadata=METADATA, table='t', child_table=None, seed=0, anchors=()):
    tables = [table] + ([child_table] if child_table else [])
    encodings = {name: compile_table(spec, metadata, name) for name in tables}
    statistics = [s for name in tables for s in encodings[name].statistics]
    counts = StatisticCounts(statistics, dict.fromkeys(tables, 0))
    target_rows = {table: 1000.0}
    if child_table:
        target_rows[child_table] = 2000.0
    discrepancy = compute_discrepancy(counts, target_rows)
    return PlannerState(
        spec=spec, metadata=metadata, table=table, child_table=child_table, columns={},
        encodings=encodings, statistics=statistics, discrepancy=discrepancy, rules_text={},
        context_text='', rng=np.random.default_rng(seed), iteration=0, requested_rows=1000,
        pool_rows=0, pool_target=1000, batch_rows=1000, anchors=list(anchors),
    )


def _total(proposals, predicate):
    return sum(p.count for p in proposals if predicate(p.assignments))


def test_propose__completes_anchor_from_the_joint_and_finer_marginal():
    # Setup
    state = _state(_spec())
    anchors = [fill_anchor(0, 't', 4000)]

    # Run
    proposals = StatisticalPlanner(exploration=0.0).propose(anchors, state)

    # Assert
    assert sum(p.count for p in proposals) == 4000
    assert all(p.anchor_id == 0 and p.source == 'statistical' for p in proposals)
    # Zero-target cells are never drawn: no (age 20-60, M), no age in [5, 20).
    assert _total(proposals, lambda a: a['sex'] == 'M' and a['age'].low >= 20) == 0
    assert _total(proposals, lambda a: 5 <= a['age'].low < 20) == 0
    # Young persons are fixed at the sub-bin resolution of the age marginal.
    young = [p for p in proposals if p.assignments['age'].high <= 20]
    assert {p.assignments['age'] for p in young} == {Range(0.0, 5.0)}
    females = _total(proposals, lambda a: a['sex'] == 'F')
    assert females / 4000 == pytest.approx(0.6, abs=0.03)
    job_a = _total(proposals, lambda a: a['job'] == 'A')
    assert job_a / 4000 == pytest.approx(0.7, abs=0.03)


def test_propose__anchor_columns_stay_fixed_and_condition_the_rest():
    # Setup
    spec = _spec()
    state = _state(spec)
    anchors = [a for a in select_anchors(state.discrepancy, 10, 10_000)
               if a.text == 'age in [0, 20) & sex = F']

    # Run
    proposals = StatisticalPlanner().propose(anchors, state)

    # Assert
    assert sum(p.count for p in proposals) == anchors[0].records == 100
    assert all(p.assignments['sex'] == 'F' for p in proposals)
    assert all(p.assignments['age'] == Range(0.0, 5.0) for p in proposals)


def test_propose__deficits_steer_the_draws():
    # Setup
    spec = _spec()
    state = _state(spec)
    job = state.discrepancy.get('job')
    job.deficits[:] = [0.0, 300.0]

    # Run
    proposals = StatisticalPlanner(exploration=0.0).propose([fill_anchor(0, 't', 500)], state)

    # Assert
    assert _total(proposals, lambda a: a['job'] == 'B') == 500


def test_propose__missing_values_from_the_rest_of_a_marginal():
    # Setup
    state = _state(_spec(job_missing=0.5))

    # Run
    proposals = StatisticalPlanner(exploration=0.0).propose([fill_anchor(0, 't', 4000)], state)

    # Assert
    missing = _total(proposals, lambda a: a['job'] is None)
    assert missing / 4000 == pytest.approx(0.5, abs=0.04)


def test_propose__reproducible_with_the_same_generator():
    # Setup
    anchors = [fill_anchor(0, 't', 300)]

    # Run
    first = StatisticalPlanner().propose(anchors, _state(_spec(), seed=1))
    second = StatisticalPlanner().propose(anchors, _state(_spec(), seed=1))

    # Assert
    assert [p.to_dict() for p in first] == [p.to_dict() for p in second]


HOUSEHOLD_METADATA = {
    'tables': {
        'h': {'primary_key': 'hid', 'columns': {'hid': {'sdtype': 'id'},
                                                 'kind': {'sdtype': 'categorical'}}},
        'p': {'columns': {'hid': {'sdtype': 'id'}, 'age': {'sdtype': 'numerical'}}},
    },
    'relationships': [{'parent_table_name': 'h', 'parent_primary_key': 'hid',
                       'child_table_name': 'p', 'child_foreign_key': 'hid'}],
}


def _household_spec():
    return MacroSpec.from_dict({
        'spec_version': '1.0',
        'tables': {
            'h': {
                'num_rows': 100,
                'columns': {'kind': {'categories': ['family', 'single']}},
                'derived_columns': {'has_kid': {'child_table': 'p', 'function': 'any',
                                                'predicate': 'age < 18'}},
                'statistics': [
                    {'name': 'kind x size', 'columns': ['kind', 'p__count'],
                     'cells': [{'key': ['family', 3], 'value': 0.5},
                               {'key': ['single', 1], 'value': 0.5}]},
                    {'name': 'kind x has_kid', 'columns': ['kind', 'has_kid'],
                     'cells': [{'key': ['family', True], 'value': 0.5},
                               {'key': ['single', False], 'value': 0.5}]},
                ],
            },
            'p': {
                'columns': {'age': {'bins': [0, 18, 100]}},
                'statistics': [{'name': 'age', 'columns': ['age'],
                                'cells': [{'key': [[0, 18]], 'value': 0.3},
                                          {'key': [[18, 100]], 'value': 0.7}]}],
            },
        },
        'relationships': [{'parent_table': 'h', 'child_table': 'p',
                           'child_count': {'cells': [{'key': [1], 'value': 0.5},
                                                     {'key': [3], 'value': 0.5}]}}],
    })


def test_propose__households_with_persons_and_derived_constraints():
    # Setup
    state = _state(_household_spec(), HOUSEHOLD_METADATA, table='h', child_table='p')

    # Run
    proposals = StatisticalPlanner(exploration=0.0).propose([fill_anchor(0, 'h', 400)], state)

    # Assert
    assert len(proposals) == 400
    for proposal in proposals:
        assert 'has_kid' not in proposal.assignments
        assert 'p__count' not in proposal.assignments
        size = 3 if proposal.assignments['kind'] == 'family' else 1
        assert len(proposal.children) == size
    families = [p for p in proposals if p.assignments['kind'] == 'family']
    with_kid = [p for p in families
                if any(child['age'].high <= 18 for child in p.children)]
    # Redraws make (almost) every family hold a child, as "kind x has_kid" asks.
    assert len(with_kid) >= 0.95 * len(families)


def test_propose__household_columns_agree_with_the_members_drawn():
    # Setup
    spec = _household_spec().to_dict()
    statistics = spec['tables']['h']['statistics']
    spec['tables']['h']['statistics'] = [s for s in statistics if s['name'] != 'kind x size']
    state = _state(MacroSpec.from_dict(spec), HOUSEHOLD_METADATA, table='h', child_table='p')
    planner = StatisticalPlanner(exploration=0.0, max_household_redraws=0,
                                 condition_on_members=True)

    # Run
    proposals = planner.propose([fill_anchor(0, 'h', 400)], state)

    # Assert
    assert len(proposals) == 400
    for proposal in proposals:
        has_kid = any(child['age'].high <= 18 for child in proposal.children)
        assert proposal.assignments['kind'] == ('family' if has_kid else 'single')


def _binned_size_spec():
    return MacroSpec.from_dict({
        'spec_version': '1.0',
        'tables': {
            'h': {
                'num_rows': 100,
                'columns': {'kind': {'categories': ['family', 'single']}},
                'derived_columns': {'p__count': {'child_table': 'p', 'function': 'count',
                                                 'bins': [1, 2, 4, 6]}},
                'statistics': [
                    {'name': 'kind x size', 'columns': ['kind', 'p__count'],
                     'cells': [{'key': ['family', [2, 4]], 'value': 0.4},
                               {'key': ['family', [4, 6]], 'value': 0.2},
                               {'key': ['single', [1, 2]], 'value': 0.4}]},
                ],
            },
            'p': {
                'columns': {'age': {'bins': [0, 18, 100]}},
                'statistics': [{'name': 'age', 'columns': ['age'],
                                'cells': [{'key': [[0, 18]], 'value': 0.3},
                                          {'key': [[18, 100]], 'value': 0.7}]}],
            },
        },
        'relationships': [{'parent_table': 'h', 'child_table': 'p'}],
    })


def test_propose__households_sized_within_a_binned_count_column():
    # Setup
    state = _state(_binned_size_spec(), HOUSEHOLD_METADATA, table='h', child_table='p')

    # Run
    proposals = StatisticalPlanner(exploration=0.0).propose([fill_anchor(0, 'h', 600)], state)

    # Assert
    assert len(proposals) == 600
    singles = [len(p.children) for p in proposals if p.assignments['kind'] == 'single']
    families = [len(p.children) for p in proposals if p.assignments['kind'] == 'family']
    assert singles and set(singles) == {1}
    # Bins [2, 4) and [4, 6] (the last bin holds its upper edge): sizes 2 to 6, each drawn.
    assert set(families) == {2, 3, 4, 5, 6}
    share_small = np.mean([size < 4 for size in families])
    assert 0.55 < share_small < 0.8


def test_proposal__round_trip_and_household_helper():
    # Setup
    proposal = HouseholdProposal({'kind': 'family'}, [{'age': Range(1, 5)}, {'age': None}],
                                 weight=2.5, reason='r', source='s', anchor_id=3)

    # Run
    restored = Proposal.from_dict(proposal.to_dict())

    # Assert
    assert restored == proposal
    assert restored.children[0]['age'] == Range(1, 5)


def test_usage_ledger__records_and_round_trips():
    # Setup
    ledger = UsageLedger()

    # Run
    ledger.record_call(prompt_tokens=10, completion_tokens=5)
    ledger.record_cached()
    ledger.record_discard('unknown_category', 2)
    restored = UsageLedger.from_dict(ledger.as_dict())

    # Assert
    assert ledger.total_tokens == 15
    assert restored.as_dict() == {'llm_calls': 1, 'prompt_tokens': 10, 'completion_tokens': 5,
                                  'cached_calls': 1, 'discarded': {'unknown_category': 2}}
