"""LLMSynthorMultiTableSynthesizer on a tree of tables: three levels, a parent with two children."""

import re

import numpy as np
import pandas as pd
import pytest
from sdmetrics.reports.multi_table import DiagnosticReport, QualityReport
from sdv.errors import SynthesizerInputError
from sdv.metadata import Metadata

from sdv_llmsynthor.evaluation.sdmetrics_reports import run_sdmetrics_reports
from sdv_llmsynthor.synthesizers import LLMSynthorMultiTableSynthesizer

# users > sessions > transactions, and users > reviews


def _tree_data(num_users=90, seed=0):
    """Pro users have many sessions, free users few; desktop sessions have more purchases."""
    rng = np.random.default_rng(seed)
    users, sessions, transactions, reviews = [], [], [], []
    for user_id in range(num_users):
        plan = str(rng.choice(['free', 'pro'], p=[0.6, 0.4]))
        users.append({'user_id': user_id, 'plan': plan, 'age': int(rng.integers(18, 70))})
        num_sessions = int(rng.integers(0, 2)) if plan == 'free' else int(rng.integers(3, 6))
        for _ in range(num_sessions):
            session_id = len(sessions)
            device = str(rng.choice(['mobile', 'desktop']))
            sessions.append({'session_id': session_id, 'user_id': user_id, 'device': device,
                             'minutes': float(np.round(rng.gamma(2.0, 5.0), 1))})
            for _ in range(int(rng.integers(0, 2) if device == 'mobile' else rng.integers(2, 4))):
                transactions.append({'transaction_id': len(transactions),
                                     'session_id': session_id,
                                     'amount': float(np.round(rng.gamma(2.0, 10.0), 2))})
        for _ in range(int(rng.integers(0, 3))):
            reviews.append({'review_id': len(reviews), 'user_id': user_id,
                            'stars': int(rng.integers(1, 6))})
    return {'users': pd.DataFrame(users), 'sessions': pd.DataFrame(sessions),
            'transactions': pd.DataFrame(transactions), 'reviews': pd.DataFrame(reviews)}


def _tree_metadata():
    def relationship(parent, key, child):
        return {'parent_table_name': parent, 'parent_primary_key': key,
                'child_table_name': child, 'child_foreign_key': key}

    return Metadata.load_from_dict({
        'tables': {
            'users': {'primary_key': 'user_id', 'columns': {
                'user_id': {'sdtype': 'id'}, 'plan': {'sdtype': 'categorical'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0}}},
            'sessions': {'primary_key': 'session_id', 'columns': {
                'session_id': {'sdtype': 'id'}, 'user_id': {'sdtype': 'id'},
                'device': {'sdtype': 'categorical'},
                'minutes': {'sdtype': 'numerical', 'decimal_places': 1}}},
            'transactions': {'primary_key': 'transaction_id', 'columns': {
                'transaction_id': {'sdtype': 'id'}, 'session_id': {'sdtype': 'id'},
                'amount': {'sdtype': 'numerical', 'decimal_places': 2}}},
            'reviews': {'primary_key': 'review_id', 'columns': {
                'review_id': {'sdtype': 'id'}, 'user_id': {'sdtype': 'id'},
                'stars': {'sdtype': 'numerical', 'decimal_places': 0}}},
        },
        'relationships': [relationship('users', 'user_id', 'sessions'),
                          relationship('users', 'user_id', 'reviews'),
                          relationship('sessions', 'session_id', 'transactions')],
    })


def _check_tree_keys(data):
    for table, key in [('users', 'user_id'), ('sessions', 'session_id'),
                       ('transactions', 'transaction_id'), ('reviews', 'review_id')]:
        assert data[table][key].is_unique, table
    assert data['sessions']['user_id'].isin(data['users']['user_id']).all()
    assert data['reviews']['user_id'].isin(data['users']['user_id']).all()
    assert data['transactions']['session_id'].isin(data['sessions']['session_id']).all()


@pytest.fixture(scope='module')
def tree():
    """The tree fitted from data with the statistical planner."""
    data = _tree_data()
    metadata = _tree_metadata()
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, planner='statistical',
                                                  max_iterations=10, verbose=False)
    synthesizer.fit(data)
    return synthesizer, metadata, data


def test_fit__three_levels_two_children_sample_valid_keys(tree):
    """Every table is sampled, with unique primary keys and foreign keys that resolve."""
    # Setup
    synthesizer, metadata, data = tree
    synthesizer.reset_sampling()

    # Run
    sampled = synthesizer.sample(scale=1.0)

    # Assert
    assert set(sampled) == set(data)
    assert len(sampled['users']) == len(data['users'])
    _check_tree_keys(sampled)
    metadata.validate_data(sampled)
    for table in ('sessions', 'transactions', 'reviews'):
        assert len(sampled[table]) > 0
    spec = synthesizer.get_spec()
    assert {(rel.parent_table, rel.child_table) for rel in spec.relationships} == {
        ('users', 'sessions'), ('users', 'reviews'), ('sessions', 'transactions')}
    edges = synthesizer.get_run_report()['edges']
    assert [(edge['parent'], edge['child']) for edge in edges] == [
        ('users', 'sessions'), ('users', 'reviews'), ('sessions', 'transactions')]


def test_sample__child_counts_follow_the_parent_at_every_level(tree):
    """Pro users get more sessions than free users; desktop sessions more transactions."""
    # Setup
    synthesizer, _, _ = tree

    # Run
    sampled = synthesizer.sample(scale=2.0)

    # Assert
    users = sampled['users'].set_index('user_id')
    sessions_per_user = sampled['sessions'].groupby('user_id').size().reindex(
        users.index, fill_value=0)
    by_plan = sessions_per_user.groupby(users['plan']).mean()
    assert by_plan['pro'] > by_plan['free'] + 1.5
    sessions = sampled['sessions'].set_index('session_id')
    per_session = sampled['transactions'].groupby('session_id').size().reindex(
        sessions.index, fill_value=0)
    by_device = per_session.groupby(sessions['device']).mean()
    assert by_device['desktop'] > by_device['mobile'] + 1.0
    assert len(sampled['users']) == 2 * 90
    # Users without a review stay (the derived min/max of stars leave them room, see derive).
    real = tree[2]
    real_share = 1 - real['reviews']['user_id'].nunique() / len(real['users'])
    sampled_share = 1 - sampled['reviews']['user_id'].nunique() / len(sampled['users'])
    assert abs(sampled_share - real_share) < 0.05


@pytest.mark.filterwarnings('ignore:The multi table .* report is deprecated:FutureWarning')
def test_sample__sdmetrics_multi_table_reports_run(tree):
    """SDMetrics' multi-table quality and diagnostic reports run; every key resolves."""
    # Setup
    synthesizer, metadata, data = tree
    sampled = synthesizer.sample(scale=1.0)
    metadata_dict = metadata.to_dict()

    # Run
    quality = QualityReport()
    quality.generate(data, sampled, metadata_dict, verbose=False)
    diagnostic = DiagnosticReport()
    diagnostic.generate(data, sampled, metadata_dict, verbose=False)
    unified = run_sdmetrics_reports(data, sampled, metadata)

    # Assert
    assert 0.5 < quality.get_score() <= 1.0
    assert 'Cardinality' in set(quality.get_properties()['Property'])
    assert diagnostic.get_score() == pytest.approx(1.0)
    assert unified.diagnostic_score == pytest.approx(1.0)
    assert 0.5 < unified.quality_score <= 1.0


def test_sample__num_rows_of_a_grandchild_table(tree):
    """num_rows of a table two levels down becomes root rows through the mean child counts."""
    # Setup
    synthesizer, _, data = tree
    per_user = len(data['transactions']) / len(data['users'])

    # Run
    sampled = synthesizer.sample(num_rows=200, main_table_name='transactions')

    # Assert
    assert abs(len(sampled['users']) - 200 / per_user) <= 0.25 * 200 / per_user
    _check_tree_keys(sampled)


def test_save_load__tree_samples_the_same(tree, tmp_path):
    """A saved tree synthesizer samples every table the same after loading."""
    # Setup
    synthesizer, _, _ = tree
    path = tmp_path / 'tree.pkl'
    synthesizer.save(path)
    loaded = LLMSynthorMultiTableSynthesizer.load(path)
    synthesizer.reset_sampling()
    loaded.reset_sampling()

    # Run
    original = synthesizer.sample(scale=0.5)
    restored = loaded.sample(scale=0.5)

    # Assert
    for table in original:
        pd.testing.assert_frame_equal(original[table], restored[table])


def test_fit__table_with_two_parents_is_refused():
    """A table with two parent tables is not a tree: refused before anything runs."""
    # Setup
    metadata = Metadata.load_from_dict({
        'tables': {
            'a': {'primary_key': 'a_id', 'columns': {'a_id': {'sdtype': 'id'}}},
            'b': {'primary_key': 'b_id', 'columns': {'b_id': {'sdtype': 'id'}}},
            'c': {'primary_key': 'c_id', 'columns': {
                'c_id': {'sdtype': 'id'}, 'a_id': {'sdtype': 'id'}, 'b_id': {'sdtype': 'id'},
                'x': {'sdtype': 'categorical'}}},
        },
        'relationships': [
            {'parent_table_name': 'a', 'parent_primary_key': 'a_id', 'child_table_name': 'c',
             'child_foreign_key': 'a_id'},
            {'parent_table_name': 'b', 'parent_primary_key': 'b_id', 'child_table_name': 'c',
             'child_foreign_key': 'b_id'},
        ],
    })
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, planner='statistical')

    # Run and Assert
    message = "every table must have at most one parent table (a tree); {'c': ['a', 'b']}"
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.fit()
