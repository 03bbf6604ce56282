"""Tests of deriving a spec from rows (the paper's appendix B.1)."""

import re

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.derive import (
    bin_index,
    derive_spec,
    quantile_edges,
    round_proportions,
)
from sdv_llmsynthor.spec.resolve import resolve_columns

SHOP_METADATA = {
    'tables': {
        'shop': {
            'primary_key': 'id',
            'columns': {
                'id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0},
                'price': {'sdtype': 'numerical', 'decimal_places': 2},
                'vehicles': {'sdtype': 'numerical', 'decimal_places': 0},
                'city': {'sdtype': 'categorical'},
                'member': {'sdtype': 'boolean'},
                'bought': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
                'email': {'sdtype': 'email', 'pii': True},
            },
        },
    },
}


def _shop(num_rows=600, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, num_rows)
    city = np.where(age < 40, rng.choice(['Rome', 'Oslo'], num_rows, p=[0.8, 0.2]),
                    rng.choice(['Rome', 'Oslo'], num_rows, p=[0.2, 0.8]))
    price = rng.lognormal(4, 0.8, num_rows).round(2)
    price[rng.random(num_rows) < 0.1] = np.nan
    return pd.DataFrame({
        'id': np.arange(num_rows),
        'age': age,
        'price': price,
        'vehicles': rng.integers(0, 4, num_rows),
        'city': city,
        'member': rng.random(num_rows) < 0.3,
        'bought': pd.Timestamp('2024-01-01') + pd.to_timedelta(rng.integers(0, 366, num_rows),
                                                                unit='D'),
        'email': [f'user{i}@example.com' for i in range(num_rows)],
    })


@pytest.mark.parametrize('scale', [1e-6, 1.0, 3.0, 1e3, 1e9])
@pytest.mark.parametrize('size', [1, 3, 7, 48, 500])
def test_round_proportions__sum_to_one(scale, size):
    """Rounded shares have 6 decimals, sum to exactly 1 and stay within 1e-6 of the truth."""
    # Setup
    rng = np.random.default_rng(size)
    counts = rng.random(size) * scale

    # Run
    shares = round_proportions(counts)

    # Assert
    assert sum(round(share * 1e6) for share in shares) == 1_000_000
    assert all(share == round(share, 6) for share in shares)
    assert np.allclose(shares, counts / counts.sum(), atol=1e-6)


def test_quantile_edges__ties_are_deduplicated():
    """Tied quantiles give fewer bins, never empty or repeated edges."""
    # Setup
    values = np.array([0.0] * 80 + list(np.linspace(1, 100, 20)))

    # Run
    edges = quantile_edges(values, 6)

    # Assert
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    assert len(edges) < 7


@pytest.mark.parametrize('scale', [1e-3, 1.0, 1e3, 1e7])
def test_quantile_edges__cover_values_at_any_scale(scale):
    """Rounded edges stay strictly increasing and cover every value, whatever the scale."""
    # Setup
    values = np.random.default_rng(1).lognormal(0, 1, 1000) * scale

    # Run
    edges = quantile_edges(values, 6)

    # Assert
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    assert np.all(bin_index(values, edges) >= 0)


def test_quantile_edges__integer_columns_get_integer_edges():
    """Integer columns get integer edges."""
    # Setup
    values = np.random.default_rng(2).integers(0, 1000, 500).astype(float)

    # Run
    edges = quantile_edges(values, 6, integer=True)

    # Assert
    assert np.all(edges == np.round(edges))
    assert len(edges) == 7


def test_bin_index__last_bin_closed():
    """Bins are right-open except the last one; values outside are -1."""
    # Run
    index = bin_index(np.array([0, 1, 2, 3, -1, 4, np.nan]), np.array([0.0, 1.0, 3.0]))

    # Assert
    assert index.tolist() == [0, 1, 1, 1, -1, -1, -1]


def test_derive_spec__single_table():
    """Bins, sub-bin marginals, categories, values, booleans and datetimes are derived."""
    # Setup
    data = _shop()
    original = data.copy()
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run
    spec = derive_spec(data, metadata, joints=None, name='shop', context='A shop.')

    # Assert
    pd.testing.assert_frame_equal(data, original)
    table = spec.get_table('shop')
    assert table.num_rows == 600
    assert set(table.columns) == {'age', 'price', 'vehicles', 'city', 'member', 'bought'}
    assert len(table.columns['age'].bins) == 7 and table.columns['age'].sub_bins == 8
    assert all(float(edge).is_integer() for edge in table.columns['age'].bins)
    assert table.columns['vehicles'].values == [0, 1, 2, 3]
    assert table.columns['city'].categories == ['Oslo', 'Rome']
    assert table.columns['member'].categories == [False, True]
    assert all(isinstance(edge, str) for edge in table.columns['bought'].bins)
    assert table.columns['price'].missing_proportion == pytest.approx(
        data['price'].isna().mean(), abs=1e-6)
    age = table.get_statistic('age')
    assert len(age.cells) == 48
    assert sum(cell.value for cell in age.cells) == pytest.approx(1.0, abs=1e-9)
    member = table.get_statistic('member').proportions()
    assert member[(True,)] == pytest.approx(data['member'].mean(), abs=1e-6)
    assert [s.name for s in table.statistics if s.is_joint] == []
    assert spec.name == 'shop' and spec.context == 'A shop.'
    spec.validate(metadata)


def test_derive_spec__marginal_matches_data():
    """Each sub-bin share is the share of rows falling in it."""
    # Setup
    data = _shop()
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run
    spec = derive_spec(data, metadata, joints=None)

    # Assert
    resolved = resolve_columns(spec, metadata, 'shop')['age']
    expected = np.bincount(bin_index(data['age'].to_numpy(float), resolved.edges),
                           minlength=len(resolved.edges) - 1) / len(data)
    shares = [cell.value for cell in spec.get_table('shop').get_statistic('age').cells]
    assert np.allclose(shares, expected, atol=1e-6)


def test_derive_spec__auto_joints_find_dependent_pair():
    """'auto' picks the dependent pair (age, city) and leaves independent columns alone."""
    # Setup
    data = _shop(2000)
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run
    spec = derive_spec(data, metadata)

    # Assert
    joints = [s.columns for s in spec.get_table('shop').statistics if s.is_joint]
    assert joints == [('age', 'city')]
    joint = spec.get_table('shop').get_statistic('age x city')
    assert len(joint.cells) <= 12
    spec.validate(metadata)


def test_derive_spec__auto_joints_find_triple():
    """Two causes of one column (a v-structure) become a triple."""
    # Setup
    rng = np.random.default_rng(3)
    first = rng.integers(0, 3, 3000)
    second = rng.integers(0, 3, 3000)
    noise = rng.random(3000) < 0.1
    total = np.where(noise, rng.integers(0, 5, 3000), first + second)
    data = pd.DataFrame({'a': first.astype(str), 'b': second.astype(str),
                         'c': total.astype(str), 'd': rng.choice(['x', 'y'], 3000)})
    metadata = Metadata.load_from_dict({'tables': {'t': {'columns': {
        name: {'sdtype': 'categorical'} for name in data.columns}}}})

    # Run
    spec = derive_spec(data, metadata)

    # Assert
    joints = [set(s.columns) for s in spec.get_table('t').statistics if s.is_joint]
    assert joints == [{'a', 'b', 'c'}]


def test_derive_spec__given_joints_and_bins():
    """Explicit joints are tabulated over main bins; explicit bins replace quantiles."""
    # Setup
    data = _shop()
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run
    spec = derive_spec(data, metadata, joints=[['city', 'age', 'member']], num_sub_bins=2,
                       bins={'age': [18, 40, 80]})

    # Assert
    table = spec.get_table('shop')
    assert table.columns['age'].bins == [18, 40, 80]
    assert len(table.get_statistic('age').cells) == 4
    joint = table.get_statistic('city x age x member')
    assert {cell.key[1] for cell in joint.cells} == {(18, 40), (40, 80)}
    expected = ((data['city'] == 'Rome') & (data['age'] < 40) & data['member']).mean()
    assert joint.proportions()[('Rome', (18, 40), True)] == pytest.approx(expected, abs=1e-6)
    spec.validate(metadata)


def test_derive_spec__bad_joint_column():
    """A joint naming a column that cannot be tabulated is a ValueError."""
    # Setup
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run and Assert
    message = "joint ['age', 'email'] of table 'shop' names column(s) ['email']"
    with pytest.raises(ValueError, match=re.escape(message)):
        derive_spec(_shop(), metadata, joints=[['age', 'email']])


def test_derive_spec__bins_must_cover_values():
    """Given bins that leave values out are a ValueError."""
    # Setup
    metadata = Metadata.load_from_dict(SHOP_METADATA)

    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("value(s) of 'age' fall outside")):
        derive_spec(_shop(), metadata, joints=None, bins={'age': [30, 50, 80]})


HOUSEHOLD_METADATA = {
    'tables': {
        'households': {'primary_key': 'hh_id', 'columns': {
            'hh_id': {'sdtype': 'id'},
            'tenure': {'sdtype': 'categorical'},
        }},
        'persons': {'primary_key': 'pid', 'columns': {
            'pid': {'sdtype': 'id'},
            'hh_id': {'sdtype': 'id'},
            'age': {'sdtype': 'numerical', 'decimal_places': 0},
        }},
    },
    'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'hh_id',
                       'child_table_name': 'persons', 'child_foreign_key': 'hh_id'}],
}


def _households():
    households = pd.DataFrame({'hh_id': [1, 2, 3, 4], 'tenure': ['Own', 'Rent', 'Own', 'Own']})
    persons = pd.DataFrame({
        'pid': range(7),
        'hh_id': [1, 1, 1, 2, 3, 3, 3],
        'age': [40, 38, 10, 70, 30, 33, 5],
    })
    return {'households': households, 'persons': persons}


def test_derive_spec__parent_child_tables():
    """Child counts, derived columns and cross-table joints come from the data."""
    # Setup
    data = _households()
    metadata = Metadata.load_from_dict(HOUSEHOLD_METADATA)
    derived = {'households': {
        'n_adults': {'child_table': 'persons', 'function': 'count', 'predicate': 'age >= 18'},
        'has_child': {'child_table': 'persons', 'function': 'any', 'predicate': 'age < 18'},
        'oldest': {'child_table': 'persons', 'function': 'max', 'column': 'age'},
    }}

    # Run
    spec = derive_spec(data, metadata, derived=derived,
                       joints={'households': [['tenure', 'has_child']]})

    # Assert
    child_count = spec.get_relationship('persons').child_count
    assert child_count.proportions() == {(0,): 0.25, (1,): 0.25, (3,): 0.5}
    households = spec.get_table('households')
    assert households.derived_columns['n_adults'].values == [0, 1, 2]
    assert households.get_statistic('n_adults').proportions() == {
        (0,): 0.25, (1,): 0.25, (2,): 0.5}
    assert households.get_statistic('has_child').proportions() == {(False,): 0.5, (True,): 0.5}
    assert households.get_statistic('tenure x has_child').proportions() == {
        ('Own', False): 0.25, ('Own', True): 0.5, ('Rent', False): 0.25}
    oldest_statistic = households.get_statistic('oldest')
    oldest = oldest_statistic.proportions(num_rows=households.num_rows)
    assert list(oldest) == [(33,), (40,), (70,)]  # the childless household is left out
    # ... as the share of every household it is not in (a partial count table), so the engine
    # keeps a childless household for it instead of giving every household an oldest person.
    assert (oldest_statistic.measure, oldest_statistic.complete) == ('count', False)
    assert [cell.value for cell in oldest_statistic.cells] == [1, 1, 1]
    assert oldest == {(33,): 0.25, (40,): 0.25, (70,): 0.25}
    assert 'hh_id' not in spec.get_table('persons').columns
    spec.validate(metadata)
    assert spec.to_dict()['relationships'][0]['child_count']['cells'][0] == {
        'key': [0], 'value': 0.25}


def test_derive_spec__automatic_derived_columns():
    """Without ``derived``, each relationship gets the min and max of a numeric child column."""
    # Setup
    metadata = Metadata.load_from_dict(HOUSEHOLD_METADATA)

    # Run
    spec = derive_spec(_households(), metadata, joints=None)

    # Assert
    derived = spec.get_table('households').derived_columns
    assert {name for name, d in derived.items() if not d.implicit} == {
        'persons__age__min', 'persons__age__max'}
    spec.validate(metadata)


def test_derive_spec__ecommerce_network_dependencies():
    """On the paper's e-commerce network, 'auto' recovers its three dependencies."""
    # Setup
    from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce

    data = sample_ecommerce(2000, seed=0)
    metadata = Metadata.load_from_dict({'tables': {'transactions': {'columns': {
        name: {'sdtype': 'numerical'} if name in ('user_age', 'price')
        else {'sdtype': 'categorical'} for name in data.columns}}}})

    # Run
    spec = derive_spec(data, metadata)

    # Assert
    joints = [set(s.columns) for s in spec.get_table('transactions').statistics if s.is_joint]
    assert {'price', 'product_category'} in joints
    assert {'location_tier', 'payment_method'} in joints
    assert any({'user_age', 'product_category'} <= joint for joint in joints)
    assert len(joints) == 3


def test_derive_spec__given_bins_in_decreasing_order_raise_with_the_path():
    """Edges passed to ``bins=`` are checked like a spec's, before any tabulation."""
    # Setup
    frame = pd.DataFrame({'age': np.arange(100) % 80 + 10.0, 'group': ['a', 'b'] * 50})
    metadata = Metadata.detect_from_dataframes({'people': frame})

    # Run and Assert
    message = ('$.tables.people.columns.age.bins[1]: bins must be strictly increasing: 50 '
               'follows 90.')
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        derive_spec(frame, metadata, bins={'age': [90, 50, 10]})
    with pytest.raises(SpecValidationError, match=re.escape(
            "$.tables.people.columns.group.bins: bins were given for 'group', which is "
            'categorical')):
        derive_spec(frame, metadata, bins={'group': [0, 1]})
