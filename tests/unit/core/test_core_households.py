"""Tests of the engine's household fixes: regrouping, derived checks, fills, budgets, caps."""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_specs import HOUSEHOLD_METADATA, HOUSEHOLD_SPEC, SINGLE_METADATA, single_spec

from sdv_llmsynthor.core.calibration import calibrate_pool
from sdv_llmsynthor.core.encoding import compile_table
from sdv_llmsynthor.core.households import regroup_members
from sdv_llmsynthor.core.loop import SynthesisLoop, allocate_counts
from sdv_llmsynthor.core.sampler import sample_columns, target_fill
from sdv_llmsynthor.core.validity import DERIVED_AS_PROPOSED, ValidityChecker
from sdv_llmsynthor.planners.base import Planner, Proposal
from sdv_llmsynthor.planners.statistical import StatisticalPlanner
from sdv_llmsynthor.spec.model import DerivedColumnSpec, MacroSpec, RuleSpec


def _sized_spec():
    """Households with a float-looking binned ``size`` that a rule equates with the count."""
    metadata = copy.deepcopy(HOUSEHOLD_METADATA)
    metadata['tables']['households']['columns']['size'] = {'sdtype': 'numerical'}
    document = copy.deepcopy(HOUSEHOLD_SPEC)
    table = document['tables']['households']
    table['columns']['size'] = {'bins': [1, 2, 3, 4]}
    shares = {1: 0.3, 2: 0.5, 3: 0.2}
    table['statistics'].append({
        'name': 'size x count', 'columns': ['size', 'persons__count'],
        'cells': [{'key': [[a, a + 1], b], 'value': shares[a] if a == b else 0.0}
                  for a in (1, 2, 3) for b in (1, 2, 3)]})
    table['rules'].append({'name': 'size matches', 'expression': 'size == persons__count'})
    return MacroSpec.from_dict(document), metadata


def test_compile_table__rule_equating_a_binned_column_with_a_count_makes_it_integer():
    # Setup
    spec, metadata = _sized_spec()

    # Run
    encoding = compile_table(spec, metadata, 'households')
    loop = SynthesisLoop(spec, metadata, StatisticalPlanner(), progress=False, seed=0,
                         max_iterations=6)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = loop.run()

    # Assert
    assert encoding.encoders['size'].integer
    rejections = result.rejections.set_index('rule')
    assert rejections.loc['size matches', 'rate'] < 0.5
    assert result.pool_units > 0


def test_regroup_members__persons_move_to_the_households_they_fit():
    # Setup: every household starts with two householders or none.
    parents = pd.DataFrame({'tenure': ['Own'] * 6})
    persons = pd.DataFrame({'role': ['H', 'H', 'C', 'C', 'H', 'H', 'C', 'C', 'H', 'H', 'C', 'C'],
                            'age': [40, 41, 5, 6, 50, 51, 7, 8, 60, 61, 9, 10]})
    units = np.repeat(np.arange(6), 2)
    derived = {'n_heads': DerivedColumnSpec(name='n_heads', child_table='persons',
                                            function='count', predicate="role == 'H'")}
    checker = ValidityChecker('households', {}, [RuleSpec('one head', 'n_heads == 1')],
                              check_metadata=False)

    # Run
    result = regroup_members(parents, units, persons, derived, checker, {},
                             np.random.default_rng(0))

    # Assert
    assert result.failing_before == 6
    assert result.failing_after == 0
    assert np.bincount(result.units, minlength=6).tolist() == [2] * 6
    heads = np.bincount(result.units[persons['role'].to_numpy() == 'H'], minlength=6)
    assert heads.tolist() == [1] * 6


class _DerivedPlanner(Planner):
    """States ``has_child`` in its household assignments; persons as given per household."""

    name = 'derived'

    def __init__(self, households):
        self.households = households

    def propose(self, anchors, state):
        return [Proposal(dict(assignments), count=1, children=[dict(c) for c in children])
                for assignments, children in self.households]


def _run_households(planner, num_rows=4):
    loop = SynthesisLoop(copy.deepcopy(_household_spec()), HOUSEHOLD_METADATA, planner,
                         progress=False, seed=0, num_rows=num_rows, max_iterations=1,
                         allow_duplicates=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return loop, loop.run()


def _household_spec():
    return MacroSpec.from_dict(copy.deepcopy(HOUSEHOLD_SPEC))


def test_run__derived_value_stated_by_a_proposal_is_met_by_regrouping():
    # Setup: the child is written in the household that says it has none.
    adult = {'age': 40, 'sex': 'Female'}
    child = {'age': 8, 'sex': 'Male'}
    households = [({'tenure': 'Owned', 'has_child': True}, [adult, adult]),
                  ({'tenure': 'Rented', 'has_child': False}, [adult, child])]

    # Run
    _, result = _run_households(_DerivedPlanner(households))

    # Assert
    rejections = result.rejections.set_index('rule')
    assert rejections.loc[DERIVED_AS_PROPOSED, 'rejected'] == 0
    persons = result.data['persons']
    households_out = result.data['households'].set_index('household_id')
    has_child = (persons['age'] < 18).groupby(persons['household_id']).any()
    assert (has_child[households_out.index[households_out['tenure'] == 'Owned']]).all()
    assert not (has_child[households_out.index[households_out['tenure'] == 'Rented']]).any()


def test_run__derived_value_no_regrouping_can_meet_is_rejected():
    # Setup: nobody is a child, yet one household says it has one.
    adult = {'age': 40, 'sex': 'Female'}
    households = [({'tenure': 'Owned', 'has_child': True}, [adult, adult]),
                  ({'tenure': 'Rented', 'has_child': False}, [adult, adult])]

    # Run
    _, result = _run_households(_DerivedPlanner(households))

    # Assert
    rejections = result.rejections.set_index('rule')
    assert rejections.loc[DERIVED_AS_PROPOSED, 'rejected'] == 1
    assert (result.data['households']['tenure'] == 'Rented').all()


class _AdultsOnlyPlanner(Planner):
    """Ignores what its anchors fix: every household is two adults."""

    name = 'adults'

    def propose(self, anchors, state):
        adult = {'age': 40, 'sex': 'Female'}
        return [Proposal({'tenure': 'Owned'}, count=1, children=[adult, adult],
                         anchor_id=anchor.anchor_id) for anchor in anchors]


def test_run__household_anchor_fixing_a_derived_column_is_checked_against_its_persons():
    # Run
    loop, result = _run_households(_AdultsOnlyPlanner(), num_rows=200)

    # Assert
    child_anchors = [entry for entry in loop.library if 'has_child' in entry['anchor']
                     and 'True' in entry['anchor']]
    assert child_anchors
    assert all(entry['accepted'] == 0 for entry in child_anchors)
    rejections = result.rejections.set_index('rule')
    assert rejections.loc[DERIVED_AS_PROPOSED, 'rejected'] >= len(child_anchors)


def test_allocate_counts__person_anchor_gets_households_not_persons():
    # Setup
    spec = _household_spec()
    loop = SynthesisLoop(spec, HOUSEHOLD_METADATA, StatisticalPlanner(), progress=False)
    loop._prepare()
    loop._reset_state()
    from sdv_llmsynthor.core.anchors import select_anchors

    discrepancy = loop._pool_discrepancy()
    anchors = [a for a in select_anchors(discrepancy, 20, 1000, rows_per_unit=loop.rows_per_unit)
               if a.table == 'persons']
    anchor = anchors[0]
    proposals = [Proposal({'tenure': 'Owned'}, weight=1.0, anchor_id=anchor.anchor_id,
                          children=[dict(anchor.fixed)])]

    # Run
    counts = allocate_counts(proposals, [anchor], discrepancy, loop.encodings['households'],
                             budget=1000)

    # Assert
    assert anchor.records > anchor.units
    assert counts == [int(round(anchor.units))]


def test_sample_columns__left_out_columns_follow_the_targets():
    # Setup
    encoding = compile_table(single_spec(), SINGLE_METADATA, 'shop')
    fill = target_fill(encoding)

    # Run
    frame = sample_columns([{'gender': 'Male'}], np.array([20_000]), encoding.encoders,
                           np.random.default_rng(0), fill=fill)

    # Assert
    shares = frame['city'].value_counts(normalize=True)
    assert shares['Paris'] == pytest.approx(0.5, abs=0.02)
    assert shares['Nice'] == pytest.approx(0.2, abs=0.02)
    price = frame['price']
    assert ((price >= 100) & (price <= 1000)).mean() == pytest.approx(0.2, abs=0.02)
    assert (price < 10).mean() == pytest.approx(0.3, abs=0.02)
    assert (frame['gender'] == 'Male').all()


def test_run__low_acceptance_proposes_more_than_batch_rows():
    # Setup
    class HalfInvalidPlanner(Planner):
        name = 'half'

        def propose(self, anchors, state):
            half = state.batch_rows // 2
            return [Proposal({'gender': 'Male', 'city': 'Paris'}, count=half),
                    Proposal({'gender': 'Female', 'city': 'Paris'}, count=state.batch_rows - half)]

    spec = single_spec(rules=[{'name': 'men only', 'expression': "gender == 'Male'"}])

    # Run
    loop = SynthesisLoop(spec, SINGLE_METADATA, HalfInvalidPlanner(), progress=False, seed=0,
                         max_iterations=2, batch_rows=40)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = loop.run()

    # Assert
    assert [entry['proposed'] for entry in result.history] == [40, 80]
    assert [entry['records_added'] for entry in result.history] == [20, 40]


def test_calibrate_pool__swap_cap_is_deterministic():
    # Setup
    rng = np.random.default_rng(0)
    contributions = (rng.random((300, 12)) < 0.3).astype(float)
    targets = np.full(12, 30.0)
    weights = np.ones(12)

    # Run
    first = calibrate_pool(contributions, targets, weights, 100, seed=1, method='random_swaps',
                           max_seconds=None, max_swaps=5)
    second = calibrate_pool(contributions, targets, weights, 100, seed=1, method='random_swaps',
                            max_seconds=None, max_swaps=5)

    # Assert
    assert first.stopped_by == 'max_swaps'
    assert first.swaps == 5
    np.testing.assert_array_equal(first.indices, second.indices)


def test_run__member_count_stated_by_a_proposal_must_match_its_persons():
    # Setup: a household said to have 3 persons but written with 2.
    adult = {'age': 40, 'sex': 'Female'}
    households = [({'tenure': 'Owned', 'persons__count': 3}, [adult, adult]),
                  ({'tenure': 'Rented', 'persons__count': 2}, [adult, adult])]

    # Run
    _, result = _run_households(_DerivedPlanner(households))

    # Assert
    rejections = result.rejections.set_index('rule')
    assert rejections.loc[DERIVED_AS_PROPOSED, 'rejected'] == 1
    assert (result.data['households']['tenure'] == 'Rented').all()
