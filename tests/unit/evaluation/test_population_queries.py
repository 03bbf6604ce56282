"""Tests of the PSRC policy queries and rejection rules (``evaluation/_psrc.py``), by path."""

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

MODULE = Path(__file__).resolve().parents[3] / 'evaluation' / '_psrc.py'


@pytest.fixture(scope='module')
def psrc():
    spec = importlib.util.spec_from_file_location('psrc_under_test', MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _person(household_id, age_band, relationship, employment='Full-time', education='Bachelor',
            gender='Male', student='Not a student'):
    if age_band in ('0-4', '5-11', '12-15', '16-17'):
        employment = education = student = 'Under 18'
    return {'household_id': household_id, 'age_band': age_band, 'gender': gender,
            'relationship': relationship, 'employment': employment, 'student': student,
            'education': education}


def _population():
    """Four households: a dual-earner family with a child and a grandparent, a retired renter
    without a vehicle, a poor single mother without a vehicle, a graduate couple without work."""
    households = pd.DataFrame({
        'household_id': [1, 2, 3, 4],
        'hh_size': [4, 1, 2, 2],
        'vehicles': [3, 0, 0, 1],
        'tenure': ['Own', 'Rent', 'Rent', 'Own'],
        'lifecycle': ['Children 5-17', 'Single, 65+', 'Children under 5',
                      'No children 2+, 35-64'],
        'income_band': ['$100k+', 'Under $25k', 'Under $25k', '$50k-$75k'],
    })
    persons = pd.DataFrame([
        _person(1, '35-44', 'Householder'),
        _person(1, '35-44', 'Spouse/partner', employment='Part-time', gender='Female'),
        _person(1, '5-11', 'Child'),
        _person(1, '65-74', 'Parent', employment='Retired'),
        _person(2, '75-84', 'Householder', employment='Retired'),
        _person(3, '25-34', 'Householder', employment='Not employed', gender='Female'),
        _person(3, '0-4', 'Child'),
        _person(4, '45-54', 'Householder', employment='Not employed', education='Graduate'),
        _person(4, '45-54', 'Spouse/partner', employment='Retired', gender='Female'),
    ])
    persons.insert(0, 'person_id', range(1, len(persons) + 1))
    return households, persons


def test_evaluate_queries__hand_made_population(psrc):
    # Setup
    households, persons = _population()

    # Run
    values = psrc.evaluate_queries(households, persons)

    # Assert
    assert values['prop_multigenerational'] == 0.25
    assert values['prop_families_with_children'] == 0.5
    assert values['prop_dual_earner_couples'] == 0.25
    assert values['avg_income_per_person_dual_earner'] == 150_000 / 4
    assert values['prop_child_no_vehicle'] == 0.25
    assert values['prop_elderly_no_vehicle'] == 0.25
    assert values['prop_no_vehicle_low_income'] == 0.5  # 12,500 and 6,250 per person
    assert values['prop_elderly_poverty'] == 0.0  # 12,500 per person is not below 12,500
    assert values['prop_female_headed_poverty'] == 0.25
    assert values['prop_high_edu_unemployed'] == 0.25
    assert values['prop_high_vehicle_high_income'] == 0.25
    # household 2 (1 elderly, 0 working age) and household 3 (child vs one adult: 1 > 1 no)
    assert values['prop_high_dependency_ratio'] == 0.25
    owners = ((40 + 40 + 8.5 + 70) / 4 + 50) / 2
    renters = (80 + (30 + 2.5) / 2) / 2
    assert values['age_gap_owners_vs_renters'] == pytest.approx(owners - renters)


def test_relative_error__zero_reference_is_nan(psrc):
    # Run
    error = psrc.relative_error(0.0, 0.2)
    finite = psrc.relative_error(0.5, 0.4)

    # Assert
    assert math.isnan(error)
    assert finite == pytest.approx(0.2)


def test_rejection_rates__valid_population_has_no_rejection(psrc):
    # Setup
    households, persons = _population()

    # Run
    rates = psrc.rejection_rates(households, persons).set_index('rule')

    # Assert
    assert rates['rejected'].sum() == 0
    assert rates.loc['household (overall)', 'checked'] == 4


def test_rejection_rates__each_broken_rule_is_counted(psrc):
    # Setup: a child with a degree, a minor partner, a size that does not match, a couple
    # with a single adult, a second householder and a lifecycle that contradicts the members.
    households, persons = _population()
    persons.loc[2, 'education'] = 'Bachelor'  # the 5-11 child of household 1
    persons.loc[8, 'age_band'] = '12-15'  # partner of household 4 becomes a minor
    persons.loc[8, ['employment', 'education', 'student']] = 'Under 18'
    households.loc[1, 'hh_size'] = 3  # household 2 lists one person
    persons.loc[6, 'relationship'] = 'Householder'  # second householder in household 3

    # Run
    rates = psrc.rejection_rates(households, persons).set_index('rule')['rejected']

    # Assert
    assert rates['age_education_minor'] == 1
    assert rates['partner_adult'] == 1
    assert rates['householder_adult'] == 1  # the 0-4 child made householder
    assert rates['size_matches_members'] == 1
    assert rates['couple_two_adults'] == 1  # household 4: partner but one adult
    assert rates['one_householder'] == 1
    assert rates['lifecycle_size'] == 1  # household 2: single lifecycle, size 3
    assert rates['lifecycle_head_age'] == 0
    assert rates['person (any rule)'] == 3
    assert rates['household (overall)'] == 4


def test_household_summary__counts_members(psrc):
    # Setup
    households, persons = _population()

    # Run
    summary = psrc.household_summary(households, persons).set_index('household_id')

    # Assert
    assert summary['persons__count'].tolist() == [4, 1, 2, 2]
    assert summary['n_children'].tolist() == [1, 0, 1, 0]
    assert summary['n_elderly'].tolist() == [1, 1, 0, 0]
    assert summary['couple_both_employed'].tolist() == [True, False, False, False]
    assert summary['head_65plus'].tolist() == [False, True, False, False]
