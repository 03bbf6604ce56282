"""Tests of the synthesis loop: reproducibility, resume, calibration, bad specs, households."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from engine_specs import HOUSEHOLD_METADATA, SINGLE_METADATA, household_spec, single_spec

from sdv_llmsynthor.core.loop import SynthesisLoop
from sdv_llmsynthor.errors import CheckpointMismatchError, SynthesisError, SynthesisWarning
from sdv_llmsynthor.planners.base import Planner, Proposal, Range
from sdv_llmsynthor.planners.statistical import StatisticalPlanner


class CrashingPlanner(StatisticalPlanner):
    """The statistical planner, interrupted (like Ctrl-C) at one iteration."""

    def __init__(self, crash_at):
        super().__init__()
        self.crash_at = crash_at

    def propose(self, anchors, state):
        if state.iteration == self.crash_at:
            raise KeyboardInterrupt
        return super().propose(anchors, state)


class TokenSpendingPlanner(StatisticalPlanner):
    """Pretends to be an LLM planner: returns weighted proposals and records token usage."""

    name = 'fake-llm'
    uses_llm = True

    def propose(self, anchors, state):
        state.usage.record_call(prompt_tokens=400, completion_tokens=100)
        proposals = []
        for anchor in anchors:
            for weight in (3.0, 1.0):
                proposals.append(Proposal(assignments=dict(anchor.fixed), weight=weight,
                                          anchor_id=anchor.anchor_id, source=self.name))
        return proposals


def _run(spec=None, metadata=SINGLE_METADATA, planner=None, **kwargs):
    kwargs.setdefault('progress', False)
    kwargs.setdefault('max_iterations', 15)
    loop = SynthesisLoop(spec or single_spec(), metadata, planner or StatisticalPlanner(),
                         **kwargs)
    return loop.run()


def test_run__exact_row_count_and_close_fit():
    # Run
    result = _run(num_rows=300, seed=1)

    # Assert
    assert len(result.data) == 300
    assert list(result.data.columns) == ['id', 'age', 'gender', 'city', 'price']
    assert result.data['id'].tolist() == list(range(300))
    assert result.pool_units >= 300
    assert result.discrepancy.max_tvd <= 0.02
    assert result.unmet.empty
    assert result.calibration.indices.size == 300
    assert len(np.unique(result.calibration.indices)) == 300
    assert result.data['age'].between(18, 90).all()
    assert set(result.data['city']) == {'Paris', 'Lyon', 'Nice'}


def test_run__same_seed_same_result_other_seed_other_result():
    # Run
    first = _run(seed=5)
    second = _run(seed=5)
    third = _run(seed=6)

    # Assert
    pd.testing.assert_frame_equal(first.data, second.data)
    assert not first.data.equals(third.data)
    assert [h['pool_rows'] for h in first.history] == [h['pool_rows'] for h in second.history]


def test_run__resume_after_interruption_matches_uninterrupted_run(tmp_path):
    # Setup
    reference = _run(seed=2)
    folder = tmp_path / 'checkpoint'

    # Run
    with pytest.raises(KeyboardInterrupt):
        _run(seed=2, planner=CrashingPlanner(crash_at=2), checkpoint_dir=folder)
    state = json.loads((folder / 'state.json').read_text())
    resumed = _run(seed=2, checkpoint_dir=folder)

    # Assert
    assert state['iteration'] == 2
    pd.testing.assert_frame_equal(resumed.data, reference.data)
    assert resumed.pool_units == reference.pool_units
    assert [h['records_added'] for h in resumed.history] == [
        h['records_added'] for h in reference.history]
    assert len(resumed.proposals) == len(reference.proposals)


def test_run__resume_of_finished_run_gives_same_result(tmp_path):
    # Setup
    first = _run(seed=3, checkpoint_dir=tmp_path)

    # Run
    second = _run(seed=3, checkpoint_dir=tmp_path)

    # Assert
    pd.testing.assert_frame_equal(first.data, second.data)


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__checkpoint_of_another_run_raises(tmp_path):
    # Setup
    _run(seed=3, checkpoint_dir=tmp_path, max_iterations=2)

    # Run and Assert
    message = (f'The checkpoint in {tmp_path} belongs to another run: seed is 3 in the '
               'checkpoint but 4 in this run.')
    with pytest.raises(CheckpointMismatchError, match=re.escape(message)):
        _run(seed=4, checkpoint_dir=tmp_path)


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__checkpoint_holds_no_secret_and_is_json(tmp_path):
    # Run
    _run(seed=3, checkpoint_dir=tmp_path, max_iterations=2)

    # Assert
    state = json.loads((tmp_path / 'state.json').read_text())
    assert state['fingerprint']['planner'] == 'statistical'
    assert 'key' not in json.dumps(state).lower().replace('cell_key', '')


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__history_records_every_iteration():
    # Run
    result = _run(seed=0, max_iterations=3)

    # Assert
    assert [h['iteration'] for h in result.history] == [0, 1, 2]
    entry = result.history[0]
    assert {'pool_rows', 'records_added', 'rejected', 'tvd', 'mean_tvd', 'planner_seconds',
            'engine_seconds', 'llm_calls', 'prompt_tokens'} <= set(entry)
    assert set(entry['tvd']) == {'gender', 'city', 'age', 'age x gender', 'price'}
    assert result.stopped_by == 'max_iterations'


def test_run__rule_excluding_a_required_cell_is_reported():
    # Setup
    spec = single_spec(rules=[{'name': 'no Nice', 'expression': "city != 'Nice'"}])

    # Run
    result = _run(spec, seed=0, max_iterations=12)

    # Assert
    assert len(result.data) == 200
    assert 'Nice' not in set(result.data['city'])
    unmet = result.unmet.set_index('statistic')
    assert 'city' in unmet.index
    assert re.search(r"all \d+ records proposed for cell city = Nice were rejected by rule "
                     r"'no Nice'", unmet.loc['city', 'reason'])
    rejections = result.rejections.set_index('rule')
    assert rejections.loc['no Nice', 'rejected'] > 0


def test_run__joint_contradicting_marginal_finishes_and_names_both():
    # Setup
    statistics = [
        {'name': 'gender', 'columns': ['gender'],
         'cells': [{'key': ['Male'], 'value': 0.8}, {'key': ['Female'], 'value': 0.2}]},
        {'name': 'age x gender', 'columns': ['age', 'gender'],
         'cells': [{'key': [[18, 90], 'Male'], 'value': 0.2},
                   {'key': [[18, 90], 'Female'], 'value': 0.8}]},
    ]
    spec = single_spec(statistics=statistics)

    # Run
    result = _run(spec, seed=0, max_iterations=10)

    # Assert
    assert len(result.data) == 200
    unmet = result.unmet.set_index('statistic')
    # Both cannot hold; the L1 calibration may satisfy either one, never both.
    assert set(unmet.index) & {'gender', 'age x gender'}
    others = {'gender': 'age x gender', 'age x gender': 'gender'}
    for name in set(unmet.index) & set(others):
        assert f"conflicts with statistic '{others[name]}'" in unmet.loc[name, 'reason']
        assert '80.0%' in unmet.loc[name, 'reason']


def test_run__every_record_rejected_stops_without_hanging():
    # Setup
    spec = single_spec(rules=[{'name': 'impossible', 'expression': 'age > 1000'}])

    # Run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = _run(spec, seed=0, max_iterations=40)

    # Assert
    assert result.stopped_by == 'no_progress'
    assert len(result.history) == 3
    assert len(result.data) == 0
    assert any(issubclass(w.category, SynthesisWarning) for w in caught)
    assert "rejected by rule 'impossible'" in ' '.join(result.unmet['reason'])


def test_run__token_budget_stops_the_loop_and_weighted_proposals_get_counts():
    # Run
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        result = _run(planner=TokenSpendingPlanner(), token_budget=1000, seed=0)

    # Assert
    assert result.stopped_by == 'token_budget'
    assert result.usage['llm_calls'] == 2
    assert result.usage['prompt_tokens'] == 800
    counts = result.proposals['count']
    assert (counts >= 0).all()
    assert result.proposals['weight'].notna().all()
    assert counts.sum() == sum(h['proposed'] for h in result.history)


def test_run__proposals_library_counts_accepted_and_selected():
    # Run
    result = _run(seed=0, num_rows=150)

    # Assert
    library = result.proposals
    assert library['accepted'].sum() == result.pool_units
    assert library['selected'].sum() == 150
    assert (library['selected'] <= library['accepted']).all()
    assert isinstance(library['assignments'].iloc[0], dict)


def test_run__bad_parameters_raise():
    # Run and Assert
    with pytest.raises(SynthesisError, match=re.escape(
            "The 'seed' parameter must be a non-negative integer. Got -1 instead.")):
        _run(seed=-1)
    with pytest.raises(SynthesisError, match=re.escape("The 'planner' parameter must be")):
        SynthesisLoop(single_spec(), SINGLE_METADATA, planner=object()).run()


def test_run__allow_duplicates_fills_a_small_pool():
    # Setup
    spec = single_spec(rules=[{'name': 'few', 'expression': "city == 'Paris'"}])

    # Run
    result = _run(spec, seed=0, num_rows=100, max_iterations=1, allow_duplicates=True,
                  batch_rows=60)

    # Assert
    assert len(result.data) == 100
    assert result.pool_units < 100


def test_run__households_keys_consistent_and_counts_exact():
    # Setup
    spec = household_spec()

    # Run
    result = _run(spec, metadata=HOUSEHOLD_METADATA, seed=0, max_iterations=20)

    # Assert
    households = result.data['households']
    persons = result.data['persons']
    assert len(households) == 60
    assert households['household_id'].tolist() == list(range(60))
    assert persons['household_id'].isin(households['household_id']).all()
    assert persons['person_id'].is_unique
    sizes = persons.groupby('household_id').size().reindex(households['household_id'],
                                                            fill_value=0)
    assert sizes.between(1, 3).all()
    assert result.discrepancy.get('child_count:persons').tvd <= 0.05
    assert result.discrepancy.get('tenure').tvd <= 0.02
    assert persons['age'].between(0, 100).all()
    assert 'persons__count' not in households.columns
    has_child = persons.assign(child=persons['age'] < 18).groupby('household_id')['child'].any()
    share = has_child.reindex(households['household_id'], fill_value=False).mean()
    assert abs(share - 0.3) <= 0.1


def test_run__households_resume_matches_uninterrupted(tmp_path):
    # Setup
    spec = household_spec()
    reference = _run(spec, metadata=HOUSEHOLD_METADATA, seed=4, max_iterations=8)

    # Run
    with pytest.raises(KeyboardInterrupt):
        _run(spec, metadata=HOUSEHOLD_METADATA, seed=4, max_iterations=8,
             planner=CrashingPlanner(crash_at=1), checkpoint_dir=tmp_path)
    resumed = _run(spec, metadata=HOUSEHOLD_METADATA, seed=4, max_iterations=8,
                   checkpoint_dir=tmp_path)

    # Assert
    for table in ('households', 'persons'):
        pd.testing.assert_frame_equal(resumed.data[table], reference.data[table])


class FixedPlanner(Planner):
    """A planner returning the same proposal every time (for the engine's own behaviour)."""

    name = 'fixed'

    def propose(self, anchors, state):
        return [Proposal({'age': Range(20, 25), 'gender': 'Male', 'city': 'Lyon',
                          'price': Range(1, 2)}, count=10_000, source=self.name)]


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__absurd_counts_are_capped_to_the_budget():
    # Run
    result = _run(planner=FixedPlanner(), seed=0, max_iterations=2, batch_rows=40)

    # Assert
    assert [h['proposed'] for h in result.history] == [40, 40]


def test_allocate_counts__weights_scaled_by_other_deficits():
    # Setup
    from sdv_llmsynthor.core.aggregate import StatisticCounts
    from sdv_llmsynthor.core.anchors import select_anchors
    from sdv_llmsynthor.core.discrepancy import compute_discrepancy
    from sdv_llmsynthor.core.encoding import compile_table
    from sdv_llmsynthor.core.loop import allocate_counts

    encoding = compile_table(single_spec(), SINGLE_METADATA, 'shop')
    counts = StatisticCounts(encoding.statistics, {'shop': 0})
    # Paris is wanted, Nice is already full.
    counts.get(encoding.get_statistic('city'))[:] = [0, 0, 60]
    counts.rows['shop'] = 60
    discrepancy = compute_discrepancy(counts, {'shop': 100})
    anchor = select_anchors(discrepancy, 20, 1000)[0]
    proposals = [
        Proposal({**anchor.fixed, 'city': 'Paris'}, weight=1.0, anchor_id=anchor.anchor_id),
        Proposal({**anchor.fixed, 'city': 'Nice'}, weight=1.0, anchor_id=anchor.anchor_id),
        Proposal({'gender': 'Female'}, count=7),
        Proposal({'gender': 'Female'}, count=-3),
    ]

    # Run
    result = allocate_counts(proposals, [anchor], discrepancy, encoding, budget=1000)

    # Assert
    assert result[0] + result[1] == anchor.records
    assert result[0] > 10 * result[1]
    assert result[2:] == [7, 0]


def test_run__partial_statistic_keeps_its_unlisted_mass():
    # Setup
    statistics = [
        {'name': 'city', 'columns': ['city'],
         'cells': [{'key': ['Paris'], 'value': 0.5}, {'key': ['Lyon'], 'value': 0.3},
                   {'key': ['Nice'], 'value': 0.2}]},
        {'name': 'young in Paris', 'columns': ['age', 'city'], 'complete': False,
         'cells': [{'key': [[18, 30], 'Paris'], 'value': 0.1}]},
    ]
    spec = single_spec(statistics=statistics)

    # Run
    result = _run(spec, seed=0, num_rows=400)

    # Assert
    young_paris = ((result.data['age'] < 30) & (result.data['city'] == 'Paris')).mean()
    assert young_paris == pytest.approx(0.1, abs=0.005)
    assert result.discrepancy.get('young in Paris').tvd <= 0.005
    assert result.unmet.empty


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__stalled_fit_above_target_stops_by_plateau_not_converged():
    # Setup: the same proposal every iteration fills the pool but can never fix the targets.
    planner = FixedPlanner()

    # Run
    result = _run(planner=planner, seed=0, max_iterations=30, batch_rows=100, patience=2)

    # Assert
    assert result.discrepancy.max_tvd > 0.1
    assert result.stopped_by == 'plateau'
    assert len(result.history) < 30


@pytest.mark.filterwarnings('ignore::sdv_llmsynthor.errors.SynthesisWarning')
def test_run__checkpoint_written_with_regroup_does_not_resume_without_it(tmp_path):
    # Setup
    spec = household_spec()
    with pytest.raises(KeyboardInterrupt):
        _run(spec, metadata=HOUSEHOLD_METADATA, seed=4, max_iterations=8,
             planner=CrashingPlanner(crash_at=1), checkpoint_dir=tmp_path)

    # Run and Assert
    with pytest.raises(CheckpointMismatchError, match=r"'regroup': True.*'regroup': False"):
        _run(spec, metadata=HOUSEHOLD_METADATA, seed=4, max_iterations=8,
             checkpoint_dir=tmp_path, regroup=False)
