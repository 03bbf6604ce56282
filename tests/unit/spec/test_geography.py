"""Spec 1.1: geography, crosswalk, household totals and statistics per zone."""

import copy

import pytest

from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.spec import MacroSpec
from sdv_llmsynthor.spec.geography import canonical_zone
from sdv_llmsynthor.spec.validation import spec_problems

METADATA = {
    'METADATA_SPEC_VERSION': 'V1',
    'tables': {
        'households': {'primary_key': 'hh_id', 'columns': {
            'hh_id': {'sdtype': 'id'}, 'NP': {'sdtype': 'numerical'},
            'HTYPE': {'sdtype': 'categorical'}}},
        'persons': {'columns': {
            'hh_id': {'sdtype': 'id'}, 'OCCP': {'sdtype': 'categorical'}}},
    },
    'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'hh_id',
                       'child_table_name': 'persons', 'child_foreign_key': 'hh_id'}],
}


def _document():
    return {
        'spec_version': '1.1',
        'geography': {
            'table': 'households',
            'levels': ['DISTRICT', 'TRACT', 'TAZ'],
            'crosswalk': {'columns': ['TAZ', 'TRACT', 'DISTRICT'],
                          'rows': [[100, 1, 1], [101, 1, 1], [200, '2', 1]]},
            'totals': {'households': {'100': 25, '101': 25, '200': 10}},
            'seed_level': 'DISTRICT',
        },
        'tables': {
            'households': {
                'columns': {'NP': {'bins': [1, 2, 3, 11]}},
                'statistics': [
                    {'name': 'hh_size', 'columns': ['NP'], 'level': 'TAZ',
                     'keys': [[[1, 2]], [[2, 3]], [[3, 11]]],
                     'zones': {'100': [5, 10, 10], '101': [5, 10, 10], '200': [2, 4, 4]}},
                    {'name': 'hh_type', 'columns': ['HTYPE'], 'level': 'TRACT',
                     'complete': False, 'weight': 0.1, 'keys': [['SF']],
                     'zones': {'1': [40], '2': [8]}},
                ],
            },
            'persons': {'statistics': [
                {'name': 'occupation', 'columns': ['OCCP'], 'level': 'DISTRICT',
                 'keys': [['A'], ['B']], 'zones': {'1': [90, 40]}},
            ]},
        },
        'relationships': [{'parent_table': 'households', 'child_table': 'persons'}],
    }


def _problems(document):
    return dict(spec_problems(document, METADATA))


def test_valid_document__loads_with_region_cells_and_round_trips():
    spec = MacroSpec.from_dict(_document())

    assert spec_problems(spec, METADATA) == []
    size = spec.tables['households'].get_statistic('hh_size')
    assert size.level == 'TAZ'
    assert size.measure == 'count'
    assert [cell.value for cell in size.cells] == [12, 24, 24]
    assert spec.tables['households'].num_rows == 60
    assert spec.geography.household_totals == {'100': 25, '101': 25, '200': 10}
    again = MacroSpec.from_dict(spec.to_dict())
    assert again == spec
    assert spec.to_dict()['spec_version'] == '1.1'


def test_zone_tree__ancestors_of_every_lowest_zone():
    tree = MacroSpec.from_dict(_document()).geography.tree()

    assert tree.lowest_zones == ['100', '101', '200']
    assert tree.zones['TRACT'] == ['1', '2']
    assert tree.ancestors['TRACT'].tolist() == [0, 0, 1]
    assert tree.children('TRACT', '1').tolist() == [0, 1]
    assert tree.zone_columns(tree.children('DISTRICT', '1'))['TRACT'].tolist() == ['1', '1', '2']


@pytest.mark.parametrize('value, expected', [
    (100, '100'), ('100', '100'), (100.0, '100'), (' 7a ', '7a'),
    (100.5, None), (True, None), ('', None), (float('nan'), None),
])
def test_canonical_zone(value, expected):
    assert canonical_zone(value) == expected


def test_geography_needs_spec_version_1_1():
    document = _document()
    document['spec_version'] = '1.0'

    problems = _problems(document)

    assert '$.spec_version' in problems


def test_zone_with_two_parents__named_with_both_rows():
    document = _document()
    document['geography']['crosswalk']['rows'].append([300, 2, 9])
    document['geography']['totals']['households']['300'] = 5
    document['tables']['households']['statistics'][0]['zones']['300'] = [1, 2, 2]

    problems = _problems(document)

    message = problems['$.geography.crosswalk.rows[3][1]']
    assert "TRACT '2' has two parents: DISTRICT '9' here, DISTRICT '1' at rows[2]" in message


def test_crosswalk_problems_are_all_reported():
    document = _document()
    geography = document['geography']
    geography['levels'] = ['DISTRICT', 'TRACT', 'TRACT', 'TAZ']
    document2 = _document()
    document2['geography']['crosswalk']['columns'] = ['TAZ', 'TRACTCE', 'DISTRICT']
    document3 = _document()
    document3['geography']['crosswalk']['rows'][1] = [100, 1, 1]
    document4 = _document()
    document4['geography']['crosswalk']['rows'][2] = [200, 1.5, 1]

    assert "duplicate level 'TRACT'" in _problems(document)['$.geography.levels[2]']
    message = _problems(document2)['$.geography.crosswalk.columns']
    assert "no column for level 'TRACT'" in message and "'TRACTCE' not a level" in message
    problems = _problems(document3)
    assert "TAZ '100' listed twice (also rows[0])" in problems['$.geography.crosswalk.rows[1][0]']
    assert '$.geography.crosswalk.rows[2][1]' in _problems(document4)


def test_totals__missing_and_unknown_zones():
    document = _document()
    totals = document['geography']['totals']['households']
    del totals['101']
    totals['999'] = 3

    problems = _problems(document)

    assert "no household total for TAZ '101'" in problems['$.geography.totals.households']
    assert "unknown TAZ '999'" in problems['$.geography.totals.households["999"]']


def test_leveled_statistics__unknown_level_zone_and_wrong_lengths():
    document = _document()
    statistics = document['tables']['households']['statistics']
    statistics[1]['level'] = 'BLOCK'
    statistics[0]['zones']['100'] = [5, 10]
    document['tables']['persons']['statistics'][0]['zones']['9'] = [1, 1]

    problems = _problems(document)

    assert "unknown level 'BLOCK'" in problems['$.tables.households.statistics[1].level']
    assert '2 values, expected 3' in problems['$.tables.households.statistics[0].zones["100"]']
    assert "unknown DISTRICT '9'" in problems['$.tables.persons.statistics[0].zones["9"]']


def test_complete_household_table_must_sum_to_the_zone_total():
    document = _document()
    document['tables']['households']['statistics'][0]['zones']['101'] = [5, 10, 9]

    problems = _problems(document)

    message = problems['$.tables.households.statistics[0].zones["101"]']
    assert "sums to 24 but TAZ '101' has 25 households" in message


def test_missing_zone_targets__listed():
    document = _document()
    del document['tables']['households']['statistics'][0]['zones']['200']

    problems = _problems(document)

    assert "no targets for TAZ '200'" in problems['$.tables.households.statistics[0].zones']


def test_bad_key_of_a_leveled_statistic__points_at_its_keys():
    document = _document()
    document['tables']['households']['statistics'][0]['keys'][2] = [[3, 12]]

    problems = _problems(document)

    assert any(path.startswith('$.tables.households.statistics[0].keys[2]')
               for path in problems), problems


def test_level_without_geography__rejected():
    document = _document()
    del document['geography']
    document['spec_version'] = '1.0'

    problems = _problems(document)

    assert 'needs a geography' in problems['$.tables.households.statistics[0].level']


def test_cells_and_zones_together__schema_error():
    document = _document()
    document['tables']['households']['statistics'][0]['cells'] = [{'key': [[1, 2]], 'value': 1}]

    with pytest.raises(SpecValidationError):
        MacroSpec.from_dict(document)


def test_negative_zone_count__schema_error():
    document = copy.deepcopy(_document())
    document['tables']['households']['statistics'][0]['zones']['100'] = [-1, 16, 10]

    with pytest.raises(SpecValidationError) as error:
        MacroSpec.from_dict(document)
    assert 'zones' in str(error.value)
