"""Tests of reading SDV DayZ parameters as a spec."""

import json

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec.dayz import spec_from_dayz_parameters
from sdv_llmsynthor.spec.model import MacroSpec

SHOP_METADATA = {
    'tables': {
        'shop': {
            'primary_key': 'id',
            'columns': {
                'id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0},
                'vehicles': {'sdtype': 'numerical', 'decimal_places': 0},
                'price': {'sdtype': 'numerical', 'decimal_places': 2},
                'city': {'sdtype': 'categorical'},
                'member': {'sdtype': 'boolean'},
                'bought': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
            },
        },
    },
}


def _shop():
    rng = np.random.default_rng(0)
    city = rng.choice(['Rome', 'Oslo', 'Lima'], 200).astype(object)
    city[:20] = None
    return pd.DataFrame({
        'id': np.arange(200),
        'age': rng.integers(18, 90, 200),
        'vehicles': rng.integers(0, 4, 200),
        'price': rng.uniform(0, 500, 200).round(2),
        'city': city,
        'member': rng.random(200) < 0.5,
        'bought': (pd.Timestamp('2024-01-01')
                   + pd.to_timedelta(rng.integers(0, 100, 200), unit='D')).strftime('%Y-%m-%d'),
    })


def test_spec_from_dayz_parameters__sdv_single_table():
    """Parameters made by SDV's DayZSynthesizer.create_parameters load as a valid spec."""
    # Setup
    from sdv.single_table.dayz import DayZSynthesizer

    data = _shop()
    metadata = Metadata.load_from_dict(SHOP_METADATA)
    params = DayZSynthesizer.create_parameters(data, metadata)

    # Run
    spec = spec_from_dayz_parameters(params, metadata)

    # Assert
    table = spec.get_table('shop')
    assert table.num_rows == 200
    assert len(table.columns['age'].bins) == 11
    assert all(float(edge).is_integer() for edge in table.columns['age'].bins)
    assert table.columns['age'].bins[0] == data['age'].min()
    assert table.columns['age'].bins[-1] == data['age'].max()
    assert table.columns['vehicles'].values == [0, 1, 2, 3]
    assert table.columns['price'].bins[0] == data['price'].min()
    assert sorted(table.columns['city'].categories) == ['Lima', 'Oslo', 'Rome']
    assert table.columns['city'].missing_proportion == pytest.approx(0.1)
    assert table.columns['bought'].bins[0] == data['bought'].min()
    assert table.statistics == []
    spec.validate(metadata)


def test_spec_from_dayz_parameters__sdv_multi_table():
    """Relationship cardinality becomes a child count uniform over min..max."""
    # Setup
    from sdv.multi_table.dayz import DayZSynthesizer

    metadata = Metadata.load_from_dict({
        'tables': {
            'households': {'primary_key': 'hh_id', 'columns': {
                'hh_id': {'sdtype': 'id'}, 'tenure': {'sdtype': 'categorical'}}},
            'persons': {'primary_key': 'pid', 'columns': {
                'pid': {'sdtype': 'id'}, 'hh_id': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical', 'decimal_places': 0}}},
        },
        'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'hh_id',
                           'child_table_name': 'persons', 'child_foreign_key': 'hh_id'}],
    })
    data = {
        'households': pd.DataFrame({'hh_id': [1, 2, 3], 'tenure': ['Own', 'Rent', 'Own']}),
        'persons': pd.DataFrame({'pid': range(6), 'hh_id': [1, 1, 2, 2, 2, 2],
                                 'age': [30, 40, 10, 12, 50, 45]}),
    }
    params = DayZSynthesizer.create_parameters(data, metadata)

    # Run
    spec = spec_from_dayz_parameters(params, metadata)

    # Assert
    relationship = spec.get_relationship('persons')
    assert relationship.parent_table == 'households'
    assert relationship.child_count.proportions() == {
        (0,): 0.2, (1,): 0.2, (2,): 0.2, (3,): 0.2, (4,): 0.2}
    assert spec.get_table('persons').num_rows == 6
    spec.validate(metadata)
    assert MacroSpec.from_dict(spec.to_dict()) == spec


def test_spec_from_dayz_parameters__json_key_relationships_and_file(tmp_path):
    """The older format (relationships keyed by a JSON list) and a file path both load."""
    # Setup
    metadata = {
        'tables': {
            'a': {'primary_key': 'k', 'columns': {'k': {'sdtype': 'id'}}},
            'b': {'columns': {'k': {'sdtype': 'id'}, 'x': {'sdtype': 'numerical'}}},
        },
        'relationships': [{'parent_table_name': 'a', 'parent_primary_key': 'k',
                           'child_table_name': 'b', 'child_foreign_key': 'k'}],
    }
    params = {
        'DAYZ_SPEC_VERSION': 'V1',
        'tables': {'a': {'num_rows': 5}, 'b': {'columns': {
            'x': {'missing_values_proportion': 0.0, 'min_value': 0.5, 'max_value': 1.5}}}},
        'relationships': {json.dumps(['a', 'b', 'k', 'k']): {'min_cardinality': 2,
                                                              'max_cardinality': 4}},
    }
    path = tmp_path / 'params.json'
    path.write_text(json.dumps(params), encoding='utf-8')

    # Run
    spec = spec_from_dayz_parameters(path, metadata, num_bins=4)

    # Assert
    assert spec.get_table('b').columns['x'].bins == [0.5, 0.75, 1, 1.25, 1.5]
    assert spec.get_relationship('b').child_count.proportions() == {
        (2,): 0.333334, (3,): 0.333333, (4,): 0.333333}
    spec.validate(metadata)


def test_spec_from_dayz_parameters__problems():
    """Unknown tables and columns, bad versions and proportions are reported with paths."""
    # Setup
    metadata = Metadata.load_from_dict(SHOP_METADATA)
    params = {
        'DAYZ_SPEC_VERSION': 'V9',
        'tables': {
            'shop': {'num_rows': 0, 'columns': {
                'agee': {'missing_values_proportion': 0.0},
                'city': {'missing_values_proportion': 1.5, 'category_values': ['a']}}},
            'shops': {},
        },
    }

    # Run
    with pytest.raises(SpecValidationError) as error:
        spec_from_dayz_parameters(params, metadata)

    # Assert
    assert [path for path, _ in error.value.problems] == [
        '$.DAYZ_SPEC_VERSION',
        '$.tables.shop.num_rows',
        '$.tables.shop.columns.agee',
        '$.tables.shop.columns.city.missing_values_proportion',
        '$.tables.shops',
    ]


def test_from_dayz_parameters__classmethod():
    """MacroSpec.from_dayz_parameters is the same function."""
    # Setup
    metadata = Metadata.load_from_dict(SHOP_METADATA)
    params = {'tables': {'shop': {'num_rows': 3, 'columns': {
        'city': {'missing_values_proportion': 0.0, 'category_values': ['x', 'y']}}}}}

    # Run
    spec = MacroSpec.from_dayz_parameters(params, metadata)

    # Assert
    assert spec.get_table('shop').num_rows == 3
    assert spec.get_table('shop').columns['city'].categories == ['x', 'y']
