"""Tests of column resolution (kinds, categories, fine edges) shared by the engine."""

import re

import numpy as np
import pytest

from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.resolve import (
    edge_to_float,
    find_edge,
    fine_edges,
    resolve_columns,
    seconds_to_iso,
)

METADATA = {
    'tables': {
        'households': {'primary_key': 'hh_id', 'columns': {
            'hh_id': {'sdtype': 'id'},
            'size': {'sdtype': 'numerical', 'decimal_places': 0, 'range_min': 1,
                     'range_max': 8},
            'tenure': {'sdtype': 'categorical', 'range_values': ['Own', 'Rent']},
            'level': {'sdtype': 'ordinal', 'range_values': ['low', 'high']},
            'moved': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
            'pet': {'sdtype': 'boolean'},
            'mail': {'sdtype': 'email', 'pii': True},
        }},
        'persons': {'columns': {
            'hh_id': {'sdtype': 'id'},
            'age': {'sdtype': 'numerical', 'decimal_places': 0},
            'income': {'sdtype': 'numerical', 'decimal_places': 2},
        }},
    },
    'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'hh_id',
                       'child_table_name': 'persons', 'child_foreign_key': 'hh_id'}],
}

SPEC = {
    'spec_version': '1.0',
    'tables': {
        'households': {
            'columns': {
                'moved': {'bins': ['2021-01-01', '2023-01-01'], 'sub_bins': 2,
                          'missing_proportion': 0.2, 'description': 'Move-in date.'},
            },
            'derived_columns': {
                'has_child': {'child_table': 'persons', 'function': 'any',
                              'predicate': 'age < 18'},
                'total_income': {'child_table': 'persons', 'function': 'sum',
                                 'column': 'income', 'bins': [0, 1000, 5000]},
            },
            'statistics': [
                {'name': 'pets', 'columns': ['pet'], 'cells': [{'key': [True], 'value': 1}]},
            ],
        },
    },
    'relationships': [{'parent_table': 'households', 'child_table': 'persons',
                       'child_count': {'cells': [{'key': [1], 'value': 0.4},
                                                 {'key': [3], 'value': 0.6}]}}],
}


def test_resolve_columns__kinds_and_supports():
    """Kinds, categories, edges, values and ranges come from the spec and the metadata."""
    # Setup
    spec = MacroSpec.from_dict(SPEC)

    # Run
    columns = resolve_columns(spec, METADATA, 'households')

    # Assert
    assert list(columns) == ['hh_id', 'size', 'tenure', 'level', 'moved', 'pet', 'mail',
                             'has_child', 'total_income', 'persons__count']
    assert [c.kind for c in columns.values()] == [
        'id', 'numerical', 'categorical', 'categorical', 'datetime', 'boolean', 'other',
        'boolean', 'numerical', 'numerical']
    assert columns['size'].integer and (columns['size'].min, columns['size'].max) == (1, 8)
    assert columns['tenure'].categories == ['Own', 'Rent']
    assert columns['level'].ordered and columns['level'].categories == ['low', 'high']
    moved = columns['moved']
    assert moved.edges.tolist() == [edge_to_float('2021-01-01', 'datetime'),
                                    edge_to_float('2022-01-01', 'datetime'),
                                    edge_to_float('2023-01-01', 'datetime')]
    assert moved.interval_indices(['2021-01-01', '2022-01-01']) == (0, 1)
    assert moved.missing_proportion == 0.2 and moved.datetime_format == '%Y-%m-%d'
    assert columns['pet'].categories == [True]
    assert columns['has_child'].derived.predicate == 'age < 18'
    assert columns['total_income'].edges.tolist() == [0, 1000, 5000]
    assert not columns['total_income'].integer
    assert columns['persons__count'].values == [1, 3] and columns['persons__count'].integer


def test_resolve_columns__unknown_table():
    """An unknown table is a KeyError naming the known ones."""
    # Setup
    spec = MacroSpec.from_dict(SPEC)

    # Run and Assert
    with pytest.raises(KeyError, match=re.escape('Tables: households, persons.')):
        resolve_columns(spec, METADATA, 'people')


def test_resolved_column__to_float_datetimes():
    """Datetime strings convert to the same seconds as the edges."""
    # Setup
    column = resolve_columns(MacroSpec.from_dict(SPEC), METADATA, 'households')['moved']

    # Run
    seconds = column.to_float(['2022-01-01', None])

    # Assert
    assert seconds[0] == column.edges[1]
    assert np.isnan(seconds[1])


@pytest.mark.parametrize('scale', [1e-6, 1.0, 1e6, 1e9])
def test_fine_edges__keep_main_edges(scale):
    """Sub-bins split each main bin uniformly and keep the main edges exactly."""
    # Setup
    main = np.array([0.0, 1.0, 3.0, 7.5]) * scale + scale

    # Run
    edges = fine_edges(main, 4)

    # Assert
    assert len(edges) == 13
    assert edges[::4].tolist() == main.tolist()
    assert np.all(np.diff(edges) > 0)
    assert find_edge(edges, float(edges[5]) * (1 + 1e-12)) == 5
    assert find_edge(edges, float(edges[5] + edges[6]) / 2) is None


def test_seconds_to_iso__round_trip():
    """ISO dates and datetimes survive a trip through seconds."""
    # Run and Assert
    for text in ('2024-02-29', '2024-02-29T06:30:00'):
        assert seconds_to_iso(edge_to_float(text, 'datetime')) == text
