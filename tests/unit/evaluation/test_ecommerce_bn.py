import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import truncnorm

from sdv_llmsynthor.errors import EvaluationError
from sdv_llmsynthor.evaluation.ecommerce_bn import (
    AGE_MEANS,
    AGE_STDS,
    AGE_WEIGHTS,
    CATEGORIES,
    CATEGORY_PROBABILITIES,
    COLUMNS,
    PRICE_PARAMETERS,
    add_derived_variables,
    age_group,
    build_ecommerce_metadata,
    sample_ecommerce,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope='module')
def large_sample():
    return sample_ecommerce(50_000, seed=123)


def _truncated_mean(mean, std, low, high):
    return truncnorm.mean((low - mean) / std, (high - mean) / std, loc=mean, scale=std)


def test_sample_ecommerce__columns_types_and_bounds():
    # Run
    data = sample_ecommerce(500, seed=0)

    # Assert
    assert list(data.columns) == list(COLUMNS)
    assert len(data) == 500
    assert data['user_age'].dtype == float
    assert data['price'].dtype == float
    assert data['user_age'].between(18, 90).all()
    assert data['price'].between(0, 2000).all()
    assert np.allclose(data['price'], data['price'].round(2))
    assert set(data['product_category']) <= set(CATEGORIES)
    assert set(data['payment_method']) <= {'Online Payment', 'Cash on Delivery'}


def test_sample_ecommerce__same_seed_same_rows():
    # Run
    first = sample_ecommerce(300, seed=7)
    second = sample_ecommerce(300, seed=7)
    other = sample_ecommerce(300, seed=8)

    # Assert
    pd.testing.assert_frame_equal(first, second)
    assert not first.equals(other)


def test_sample_ecommerce__zero_rows():
    # Run
    data = sample_ecommerce(0, seed=0)

    # Assert
    assert list(data.columns) == list(COLUMNS)
    assert data.empty


@pytest.mark.parametrize('num_rows', [-1, 2.5, '10', True])
def test_sample_ecommerce__invalid_num_rows(num_rows):
    # Setup
    message = (
        f"The 'num_rows' parameter must be a non-negative integer. Got {num_rows!r} instead."
    )

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape(message)):
        sample_ecommerce(num_rows, seed=0)


def test_sample_ecommerce__independent_marginals(large_sample):
    # Run
    gender = large_sample['gender'].value_counts(normalize=True)
    tier = large_sample['location_tier'].value_counts(normalize=True)

    # Assert
    assert gender['Male'] == pytest.approx(0.45, abs=0.01)
    assert tier['Developed'] == pytest.approx(0.40, abs=0.01)


def test_sample_ecommerce__age_mixture_is_normalised(large_sample):
    # Setup
    expected_mean = sum(
        weight * _truncated_mean(mean, std, 18, 90)
        for weight, mean, std in zip(AGE_WEIGHTS, AGE_MEANS, AGE_STDS)
    )

    # Run
    mean = large_sample['user_age'].mean()

    # Assert
    assert sum(AGE_WEIGHTS) == pytest.approx(1.0)
    assert AGE_WEIGHTS[0] == pytest.approx(0.5 / 1.1)
    assert mean == pytest.approx(expected_mean, abs=0.25)


@pytest.mark.parametrize('group_gender', list(CATEGORY_PROBABILITIES))
def test_sample_ecommerce__category_given_age_group_and_gender(large_sample, group_gender):
    # Setup
    group, gender = group_gender
    expected = dict(zip(CATEGORIES, CATEGORY_PROBABILITIES[group_gender]))
    tolerance = 0.02 if group == 'Young' else 0.035  # fewer old and middle-aged rows

    # Run
    rows = large_sample[(age_group(large_sample['user_age']) == group)
                        & (large_sample['gender'] == gender)]
    shares = rows['product_category'].value_counts(normalize=True)

    # Assert
    for category, probability in expected.items():
        assert shares.get(category, 0.0) == pytest.approx(probability, abs=tolerance)


def test_sample_ecommerce__price_given_category(large_sample):
    # Run
    means = large_sample.groupby('product_category')['price'].mean()

    # Assert
    for category, (mean, std) in PRICE_PARAMETERS.items():
        assert means[category] == pytest.approx(_truncated_mean(mean, std, 0, 2000), abs=15)


def test_sample_ecommerce__payment_given_tier(large_sample):
    # Run
    shares = pd.crosstab(large_sample['location_tier'], large_sample['payment_method'],
                         normalize='index')

    # Assert
    assert shares.loc['Developed', 'Online Payment'] == pytest.approx(0.70, abs=0.015)
    assert shares.loc['Developing', 'Online Payment'] == pytest.approx(0.40, abs=0.015)


def test_age_group__boundaries():
    # Run
    groups = age_group([18.0, 34.99, 35.0, 54.99, 55.0, 90.0])

    # Assert
    assert list(groups) == ['Young', 'Young', 'Middle', 'Middle', 'Old', 'Old']


def test_add_derived_variables__hand_computed_rows():
    # Setup: S and l0 computed by hand from A.1's formulas.
    data = pd.DataFrame({
        # S = 0, l0 = sqrt(800) * 1.2 / 1 * 1.3 = 44.12
        # S = 0.01 + 0.5 + 0.3 = 0.81, l0 = 10 * 0.85 / (log(11) + 1) * 1.1 = 2.75
        # S = -tanh(-0.25) + 0.8 = 1.045, l0 = 0
        # S = -tanh(0.4) + 0.0625 = -0.317, l0 = 20 * 1.2 / (log(26) + 1) * 1.4 = 7.89
        # S = 0, l0 = 10 * 1.2 * 1.1 = 13.2
        'user_age': [35.0, 25.0, 35.0, 60.0, 35.0],
        'gender': ['Male', 'Female', 'Male', 'Female', 'Male'],
        'location_tier': ['Developed', 'Developing', 'Developing', 'Developed', 'Developed'],
        'product_category': ['Electronics', 'Apparel', 'Food & Beverages',
                             'Furniture & Appliances', 'Apparel'],
        'price': [800.0, 100.0, 0.0, 400.0, 100.0],
        'payment_method': ['Online Payment', 'Cash on Delivery', 'Cash on Delivery',
                           'Online Payment', 'Online Payment'],
    })
    original = data.copy()

    # Run
    result = add_derived_variables(data)

    # Assert
    assert list(result['discount_propensity']) == ['Mid', 'Mid', 'High', 'Mid', 'Mid']
    assert list(result['lifetime_value_band']) == ['High', 'Low', 'Low', 'Low', 'Mid']
    pd.testing.assert_frame_equal(data, original)


def test_add_derived_variables__thresholds_are_strict():
    # Setup: l0 = sqrt(p) * 1.2 * 1.3 at age 35, so p = (20 / 1.56)^2 gives l0 = 20 (Mid).
    price_at_twenty = (20 / 1.56) ** 2
    data = pd.DataFrame({
        'user_age': [35.0, 35.0],
        'gender': ['Male', 'Male'],
        'location_tier': ['Developed', 'Developed'],
        'product_category': ['Electronics', 'Electronics'],
        'price': [price_at_twenty - 1e-6, price_at_twenty + 1e-3],
        'payment_method': ['Online Payment', 'Online Payment'],
    })

    # Run
    result = add_derived_variables(data)

    # Assert
    assert list(result['lifetime_value_band']) == ['Mid', 'High']


def test_add_derived_variables__discount_never_low(large_sample):
    # Run
    result = add_derived_variables(large_sample)

    # Assert
    assert set(result['discount_propensity']) == {'Mid', 'High'}
    assert set(result['lifetime_value_band']) == {'Low', 'Mid', 'High'}


def test_add_derived_variables__unknown_category():
    # Setup
    data = sample_ecommerce(5, seed=0)
    data.loc[0, 'product_category'] = 'Toys'
    message = (
        "Column 'product_category' has values outside the network's categories: ['Toys']. "
        f'Expected only {list(CATEGORIES)}.'
    )

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape(message)):
        add_derived_variables(data)


def test_add_derived_variables__missing_column():
    # Setup
    data = sample_ecommerce(5, seed=0).drop(columns=['price'])

    # Run and Assert
    with pytest.raises(EvaluationError, match=re.escape("Missing columns for the derived "
                                                        "variables: ['price'].")):
        add_derived_variables(data)


def test_build_ecommerce_metadata__matches_saved_json():
    # Setup
    from sdv.metadata import Metadata

    path = REPOSITORY_ROOT / 'metadata' / 'ecommerce.json'

    # Run
    built = build_ecommerce_metadata().to_dict()
    loaded = Metadata.load_from_json(str(path)).to_dict()
    saved = json.loads(path.read_text())

    # Assert
    assert loaded == built
    assert saved['tables']['transactions']['columns']['price'] == {
        'sdtype': 'numerical', 'decimal_places': 2
    }
    assert saved['tables']['transactions']['columns']['gender'] == {'sdtype': 'categorical'}
