"""Tests of the column encoders and the compiled statistics."""

import numpy as np
import pandas as pd
import pytest
from engine_specs import SINGLE_METADATA, single_spec

from sdv_llmsynthor.core.encoding import ColumnEncoder, compile_table, format_number
from sdv_llmsynthor.planners.base import Range


def _binned(edges, **kwargs):
    return ColumnEncoder(name='x', kind='numerical', edges=np.asarray(edges, dtype=float),
                         **kwargs)


def test_encode__values_on_edges_fall_in_the_right_open_bin():
    # Setup
    encoder = _binned([0, 10, 20, 30])

    # Run
    codes = encoder.encode(pd.Series([0.0, 9.999, 10.0, 20.0, 29.999]))

    # Assert
    np.testing.assert_array_equal(codes, [0, 0, 1, 2, 2])


def test_encode__last_edge_is_closed():
    # Setup
    encoder = _binned([0, 10, 20, 30])

    # Run
    codes = encoder.encode(pd.Series([30.0]))

    # Assert
    assert codes.tolist() == [2]


def test_encode__out_of_range_and_missing_are_minus_one():
    # Setup
    encoder = _binned([0, 10, 20, 30])

    # Run
    codes = encoder.encode(pd.Series([-0.001, 30.0001, np.nan, None, 1e300, -np.inf, np.inf]))

    # Assert
    assert codes.dtype == np.int32
    assert codes.tolist() == [-1] * 7


def test_encode__non_numeric_text_in_numeric_column_is_minus_one():
    # Setup
    encoder = _binned([0, 10])

    # Run
    codes = encoder.encode(pd.Series(['5', 'five', None], dtype=object))

    # Assert
    assert codes.tolist() == [0, -1, -1]


def test_encode__unseen_category_and_missing_are_minus_one():
    # Setup
    encoder = ColumnEncoder(name='c', kind='categorical', categories=['a', 'b'])

    # Run
    codes = encoder.encode(pd.Series(['b', 'a', 'z', None, np.nan]))

    # Assert
    assert codes.tolist() == [1, 0, -1, -1, -1]


def test_encode__categorical_dtype_input():
    # Setup
    encoder = ColumnEncoder(name='c', kind='categorical', categories=['a', 'b', 'c'])
    series = pd.Series(pd.Categorical(['c', 'z', None, 'a'], categories=['z', 'a', 'c']))

    # Run
    codes = encoder.encode(series)

    # Assert
    assert codes.tolist() == [2, -1, -1, 0]


def test_encode__numeric_categories_match_text():
    # Setup
    encoder = ColumnEncoder(name='c', kind='categorical', categories=[1, 2, 3])

    # Run
    codes = encoder.encode(pd.Series(['2', 3, 1.0, '4'], dtype=object))

    # Assert
    assert codes.tolist() == [1, 2, 0, -1]


def test_encode__booleans():
    # Setup
    encoder = ColumnEncoder(name='b', kind='boolean', categories=[False, True])

    # Run
    from_bool = encoder.encode(pd.Series([True, False, True]))
    from_object = encoder.encode(pd.Series([True, None, 'False'], dtype=object))

    # Assert
    assert from_bool.tolist() == [1, 0, 1]
    assert from_object.tolist() == [1, -1, 0]


def test_encode__discrete_values():
    # Setup
    encoder = ColumnEncoder(name='n', kind='numerical', values=np.array([3.0, 1.0, 2.0]))

    # Run
    codes = encoder.encode(pd.Series([1, 2.0, 3.0000000001, 2.5, 7, np.nan]))

    # Assert
    assert codes.tolist() == [1, 2, 0, -1, -1, -1]


def test_encode__datetimes_in_seconds():
    # Setup
    edges = np.array([
        pd.Timestamp('2024-01-01').timestamp(), pd.Timestamp('2024-02-01').timestamp(),
        pd.Timestamp('2024-03-01').timestamp(),
    ])
    encoder = ColumnEncoder(name='d', kind='datetime', edges=edges, datetime_format='%Y-%m-%d')

    # Run
    codes = encoder.encode(pd.Series(['2024-01-15', '2024-02-01', '2024-03-01', '2023-12-31',
                                      None, 'not a date']))

    # Assert
    assert codes.tolist() == [0, 1, 1, -1, -1, -1]


def test_key_part_to_code_range__intervals_and_categories():
    # Setup
    encoder = _binned([0, 5, 10, 15, 20])
    categories = ColumnEncoder(name='c', kind='categorical', categories=['a', 'b'])

    # Run
    main = encoder.key_part_to_code_range((0, 10))
    fine = encoder.key_part_to_code_range([15, 20])
    unknown = categories.key_part_to_code_range('zz')

    # Assert
    assert main == (0, 2)
    assert fine == (3, 4)
    assert categories.key_part_to_code_range('b') == (1, 2)
    assert unknown == (-1, -1)


def test_code_range_to_value__range_and_render():
    # Setup
    encoder = _binned([18, 30, 45, 90])

    # Run
    value = encoder.code_range_to_value((1, 3))
    text = encoder.render_code_range((1, 3))
    inner = encoder.render_code_range((0, 1))

    # Assert
    assert value == Range(30.0, 90.0)
    assert text == 'in [30, 90]'
    assert inner == 'in [18, 30)'


@pytest.mark.parametrize(('value', 'expected'), [(35.0, '35'), (23.5, '23.5'),
                                                  (0.125, '0.125'), (1234567.0, '1234567')])
def test_format_number__compact(value, expected):
    # Run
    text = format_number(value)

    # Assert
    assert text == expected


def test_compile_table__levels_lookups_and_cells():
    # Setup
    spec = single_spec()

    # Run
    encoding = compile_table(spec, SINGLE_METADATA, 'shop')
    joint = encoding.get_statistic('age x gender')

    # Assert
    age = encoding.encoders['age']
    assert age.num_codes == 6
    assert joint.columns == ('age', 'gender')
    assert joint.space_size == 6
    np.testing.assert_array_equal(joint.lookups[0], [0, 0, 1, 1, 2, 2, -1])
    np.testing.assert_array_equal(joint.lookups[1], [0, 1, -1])
    assert joint.describe_cell(0) == 'age in [18, 30) & gender = Male'
    assert joint.describe_cell(5) == 'age in [45, 90] & gender = Female'
    np.testing.assert_allclose(joint.shares, [0.1, 0.2, 0.15, 0.15, 0.15, 0.25])
    assert joint.rest_share == pytest.approx(0.0)
    assert joint.cell_fixed_values(2) == {'age': Range(30.0, 45.0), 'gender': 'Male'}


def test_compile_table__partial_statistic_rest_share():
    # Setup
    spec = single_spec(statistics=[{
        'name': 'paris only', 'columns': ['city'], 'complete': False,
        'cells': [{'key': ['Paris'], 'value': 0.35}],
    }])

    # Run
    encoding = compile_table(spec, SINGLE_METADATA, 'shop')

    # Assert
    statistic = encoding.get_statistic('paris only')
    assert not statistic.complete
    assert statistic.rest_share == pytest.approx(0.65)
