"""Unit tests of the relational tree helpers: edge order and the spec of each edge."""

import re

import pytest

from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.tree import edge_spec, relationship_edges, untargeted_statistics


def _metadata(relationships, tables=('region', 'household', 'person', 'vehicle')):
    return {'tables': {name: {'primary_key': f'{name}_id', 'columns': {
        f'{name}_id': {'sdtype': 'id'}, 'x': {'sdtype': 'categorical'}}} for name in tables},
        'relationships': [{'parent_table_name': parent, 'parent_primary_key': f'{parent}_id',
                           'child_table_name': child, 'child_foreign_key': f'{parent}_id'}
                          for parent, child in relationships]}


def test_relationship_edges__top_down_order():
    """Each edge comes after the edge that makes its parent."""
    # Setup
    metadata = _metadata([('person', 'vehicle'), ('household', 'person'),
                          ('region', 'household')])

    # Run
    root, edges = relationship_edges(metadata)

    # Assert
    assert root == 'region'
    assert [(edge.parent, edge.child) for edge in edges] == [
        ('region', 'household'), ('household', 'person'), ('person', 'vehicle')]


def test_relationship_edges__loose_table_is_refused():
    """A table in no relationship is named."""
    # Setup
    metadata = _metadata([('region', 'household'), ('household', 'person')])

    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("the tables ['vehicle'] are in no")):
        relationship_edges(metadata)


def _users_spec():
    def marginal(name, column, keys):
        return {'name': name, 'columns': [column],
                'cells': [{'key': [key], 'value': 1 / len(keys)} for key in keys]}

    return MacroSpec.from_dict({
        'spec_version': '1.0',
        'tables': {
            'users': {
                'derived_columns': {
                    'any_long': {'child_table': 'sessions', 'function': 'any',
                                 'predicate': 'minutes > 10'},
                    'any_bad': {'child_table': 'reviews', 'function': 'any',
                                'predicate': 'stars < 2'},
                },
                'statistics': [marginal('plan', 'plan', ['free', 'pro']),
                               marginal('long', 'any_long', [False, True]),
                               marginal('bad', 'any_bad', [False, True]),
                               {'name': 'both', 'columns': ['any_long', 'any_bad'],
                                'cells': [{'key': [False, False], 'value': 1.0}]}],
                'rules': [{'name': 'pro long', 'expression': "plan == 'pro' -> any_long"}],
            },
            'sessions': {
                'derived_columns': {'any_big': {'child_table': 'transactions',
                                                'function': 'any',
                                                'predicate': 'amount > 100'}},
                'statistics': [marginal('device', 'device', ['mobile', 'desktop']),
                               marginal('big', 'any_big', [False, True])],
            },
            'transactions': {}, 'reviews': {},
        },
        'relationships': [{'parent_table': 'users', 'child_table': 'sessions',
                           'child_count': {'cells': [{'key': [1], 'value': 1.0}]}},
                          {'parent_table': 'users', 'child_table': 'reviews'},
                          {'parent_table': 'sessions', 'child_table': 'transactions'}],
    })


def test_edge_spec__keeps_what_the_edge_can_target():
    """The parent keeps its own and this child's derived columns; the child loses its own."""
    # Setup
    spec = _users_spec()
    _, edges = relationship_edges(_metadata(
        [('users', 'sessions'), ('users', 'reviews'), ('sessions', 'transactions')],
        tables=('users', 'sessions', 'transactions', 'reviews')))

    # Run
    sessions_edge = edge_spec(spec, edges[0])
    reviews_edge = edge_spec(spec, edges[1])

    # Assert
    users = sessions_edge.tables['users']
    assert set(users.derived_columns) == {'any_long', 'sessions__count'}
    assert [s.name for s in users.statistics] == ['plan', 'long', 'child_count:sessions']
    assert [rule.name for rule in users.rules] == ['pro long']
    assert [s.name for s in sessions_edge.tables['sessions'].statistics] == ['device']
    assert sessions_edge.tables['sessions'].derived_columns == {}
    reviews_users = reviews_edge.tables['users']
    assert set(reviews_users.derived_columns) == {'any_bad', 'reviews__count'}
    assert reviews_users.rules == []
    assert 'any_big' in spec.tables['sessions'].derived_columns  # the input is unchanged
    assert untargeted_statistics(spec) == ['users: both']


def test_derive_spec__no_joint_spans_two_children_or_a_missing_minimum():
    """Derived columns of two children are never joined (they are synthesised apart), and a
    minimum missing for parents without children joins no column present for them."""
    # Setup
    import numpy as np
    import pandas as pd
    from sdv.metadata import Metadata

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=300)  # sessions and reviews: the same count per user
    users = pd.DataFrame({'users_id': range(300), 'x': np.where(counts > 1, 'a', 'b')})
    owners = np.repeat(np.arange(300), counts)
    sessions = pd.DataFrame({'sessions_id': range(len(owners)), 'users_id': owners,
                             'x': rng.choice(['p', 'q'], size=len(owners)),
                             'minutes': rng.gamma(2.0, 5.0, size=len(owners))})
    reviews = pd.DataFrame({'reviews_id': range(len(owners)), 'users_id': owners,
                            'x': rng.choice(['p', 'q'], size=len(owners))})
    data = {'users': users, 'sessions': sessions, 'reviews': reviews}
    metadata_dict = _metadata([('users', 'sessions'), ('users', 'reviews')],
                              tables=('users', 'sessions', 'reviews'))
    metadata_dict['tables']['sessions']['columns']['minutes'] = {'sdtype': 'numerical'}
    metadata = Metadata.load_from_dict(metadata_dict)

    # Run
    spec = MacroSpec.from_data(data, metadata, max_joints=6)

    # Assert
    spec.validate(metadata)
    users_spec = spec.tables['users']
    children = {name: derived.child_table for name, derived in users_spec.derived_columns.items()}
    joints = [s.columns for s in users_spec.statistics if len(s.columns) > 1]
    assert joints
    for columns in joints:
        assert len({children[c] for c in columns if c in children}) <= 1
        if 'sessions__minutes__min' in columns:
            assert set(columns) <= {'sessions__minutes__min', 'sessions__minutes__max'}
    assert untargeted_statistics(spec) == []
