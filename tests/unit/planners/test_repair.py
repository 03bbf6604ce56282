"""Tests of the validation and repair of LLM output (planners/repair.py)."""

import re
from collections import Counter

import pytest
from llm_planner_fixtures import (
    HOUSEHOLD_METADATA,
    SHOP_METADATA,
    household_spec,
    make_state,
    shop_spec,
)

from sdv_llmsynthor.errors import LLMRequestError, LLMTransportError
from sdv_llmsynthor.llm.prompts import ColumnPrompt
from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply
from sdv_llmsynthor.planners.base import Range, UsageLedger
from sdv_llmsynthor.planners.repair import (
    HouseholdKeys,
    ProposalRepairer,
    RejectedProposal,
    build_table_view,
    call_llm,
    repair_household,
)

SCHEMA = {
    'type': 'object',
    'properties': {'city': {'enum': ['Paris', 'Lyon']}},
    'required': ['city'],
    'additionalProperties': False,
}
MESSAGES = [{'role': 'user', 'content': 'A city, please.'}]


@pytest.fixture
def shop_view():
    return build_table_view(make_state(shop_spec(), SHOP_METADATA, 'shop'))


@pytest.fixture
def repairer(shop_view):
    return ProposalRepairer(shop_view.columns, usage=UsageLedger())


def _column(name, **kwargs):
    return ColumnPrompt(name=name, kind=kwargs.pop('kind', 'categorical'), **kwargs)


# --------------------------------------------------------------------------- categories
@pytest.mark.parametrize('raw', ['Female', 'female', '  FEMALE ', 'Femal'])
def test_repair_category__exact_case_whitespace_and_close_match(repairer, shop_view, raw):
    # Run
    value = repairer.repair_category(shop_view.columns['gender'], raw)

    # Assert
    assert value == 'Female'


def test_repair_category__counts_each_kind_of_repair(repairer, shop_view):
    # Setup
    column = shop_view.columns['gender']

    # Run
    repairer.repair_category(column, 'Female')
    repairer.repair_category(column, 'male ')
    repairer.repair_category(column, 'Femle')

    # Assert
    assert dict(repairer.repairs) == {'category_case': 1, 'category_close_match': 1}


@pytest.mark.parametrize('raw', ['Marseille', 'F', 42, {'city': 'Paris'}, ['Paris', 'Lyon']])
def test_repair_category__unknown_values_are_rejected(repairer, shop_view, raw):
    # Run and Assert
    with pytest.raises(RejectedProposal):
        repairer.repair_category(shop_view.columns['city'], raw)


def test_repair_category__ambiguous_close_match_is_rejected():
    # Setup
    column = _column('size', categories=['Large A', 'Large B'])
    repairer = ProposalRepairer({'size': column})

    # Run and Assert
    with pytest.raises(RejectedProposal, match=re.escape('unknown_category')):
        repairer.repair_category(column, 'Large C')


def test_repair_category__booleans_are_not_numbers():
    # Setup
    column = _column('flag', kind='boolean', categories=[False, True])
    repairer = ProposalRepairer({'flag': column})

    # Run
    value = repairer.repair_category(column, True)

    # Assert
    assert value is True
    with pytest.raises(RejectedProposal):
        repairer.repair_category(column, 1)


def test_repair_category__discrete_values_accept_numeric_text():
    # Setup
    column = _column('vehicles', kind='numerical', values=[0, 1, 2])
    repairer = ProposalRepairer({'vehicles': column})

    # Run
    value = repairer.repair_category(column, '2')

    # Assert
    assert value == 2
    assert repairer.repairs['value_format'] == 1
    with pytest.raises(RejectedProposal):
        repairer.repair_category(column, 7)


def test_repair_category__single_item_list_is_unwrapped(repairer, shop_view):
    # Run
    value = repairer.repair_category(shop_view.columns['city'], ['Nice'])

    # Assert
    assert value == 'Nice'
    assert repairer.repairs['single_item_list'] == 1


# --------------------------------------------------------------------------- intervals
def test_repair_interval__bin_label_gives_its_range(repairer, shop_view):
    # Run
    value = repairer.repair_interval(shop_view.columns['age'], '30-45')

    # Assert
    assert value == Range(30.0, 45.0)
    assert not repairer.repairs


@pytest.mark.parametrize('raw', ['30 - 45', '[30, 45)', '[30,45)'])
def test_repair_interval__reformatted_label_is_repaired(repairer, shop_view, raw):
    # Run
    value = repairer.repair_interval(shop_view.columns['age'], raw)

    # Assert
    assert value == Range(30.0, 45.0)
    assert repairer.repairs['label_format'] == 1


@pytest.mark.parametrize('raw, expected', [('20-40', Range(20.0, 40.0)),
                                           ('-5 to 20', Range(18.0, 20.0))])
def test_repair_interval__short_range_outside_the_labels_reads_as_a_range(
        repairer, shop_view, raw, expected):
    # Run
    value = repairer.repair_interval(shop_view.columns['age'], raw)

    # Assert
    assert value == expected
    assert repairer.repairs['label_format'] == 1
    assert not repairer.repairs['inverted_range']


def test_repair_interval__extra_label_of_the_anchor_is_accepted(repairer, shop_view):
    # Run
    value = repairer.repair_interval(shop_view.columns['age'], '[18, 24)',
                                     extra_labels={'[18, 24)': (18.0, 24.0)})

    # Assert
    assert value == Range(18.0, 24.0)


def test_repair_interval__inverted_range_is_swapped(repairer, shop_view):
    # Run
    value = repairer.repair_interval(shop_view.columns['price'], [50, 20])

    # Assert
    assert value == Range(20.0, 50.0)
    assert repairer.repairs['inverted_range'] == 1


def test_repair_interval__range_partly_outside_is_clipped(repairer, shop_view):
    # Run
    value = repairer.repair_interval(shop_view.columns['price'], [-5, 2000])

    # Assert
    assert value == Range(0.0, 1000.0)
    assert repairer.repairs['clipped_range'] == 1


@pytest.mark.parametrize('raw', [[1001, 5000], [-10, -1], 'cheap', [1, 2, 3], None])
def test_repair_interval__unusable_ranges_are_rejected(repairer, shop_view, raw):
    # Run and Assert
    with pytest.raises(RejectedProposal):
        repairer.repair_interval(shop_view.columns['price'], raw)


def test_repair_interval__point_value_of_integer_column_stays_a_number(repairer, shop_view):
    # Run
    value = repairer.repair_interval(shop_view.columns['age'], [40, 40])

    # Assert
    assert value == 40
    assert isinstance(value, int)


def test_repair_interval__datetime_bounds_from_iso_dates():
    # Setup
    column = _column('day', kind='datetime', labels={}, minimum=0.0, maximum=86400.0 * 365)
    repairer = ProposalRepairer({'day': column})

    # Run
    value = repairer.repair_interval(column, ['1970-01-03', '1970-01-02'])

    # Assert
    assert value == Range(86400.0, 2 * 86400.0)


# --------------------------------------------------------------------------- counts, weights
@pytest.mark.parametrize('raw, expected', [(10, 10), (10.4, 10), ('12', 12), (5000, 1000)])
def test_repair_count__positive_counts_kept_and_absurd_ones_capped(repairer, raw, expected):
    # Run
    count = repairer.repair_count(raw, batch_rows=100)

    # Assert
    assert count == expected


@pytest.mark.parametrize('raw, reason', [(0, 'non_positive_count'),
                                         (-3, 'non_positive_count'),
                                         ('many', 'invalid_count'), (None, 'invalid_count')])
def test_repair_count__non_positive_or_unreadable_counts_are_rejected(repairer, raw, reason):
    # Run and Assert
    with pytest.raises(RejectedProposal, match=re.escape(reason)):
        repairer.repair_count(raw, batch_rows=100)


@pytest.mark.parametrize('raw', [0, -1, 'heavy', float('nan')])
def test_repair_weight__invalid_weights_are_rejected(repairer, raw):
    # Run and Assert
    with pytest.raises(RejectedProposal, match=re.escape('invalid_weight')):
        repairer.repair_weight(raw)


# --------------------------------------------------------------------------- records
def test_repair_record__missing_columns_left_out_and_unknown_keys_ignored(repairer, shop_view):
    # Setup
    raw = {'gender': 'female', 'age': '[18, 30)', 'planet': 'Mars', 'weight': 2}

    # Run
    record = repairer.repair_record(raw, list(shop_view.columns), ignore=['weight'])

    # Assert
    assert record == {'gender': 'Female', 'age': Range(18.0, 30.0)}
    assert repairer.repairs['missing_column'] == 2
    assert repairer.repairs['unknown_column'] == 1


def test_repair_record__changed_anchor_value_is_rejected(repairer, shop_view):
    # Setup
    raw = {'gender': 'Male', 'age': '[18, 30)', 'city': 'Paris', 'price': '[0, 10)'}

    # Run and Assert
    with pytest.raises(RejectedProposal, match=re.escape('anchor_mismatch')):
        repairer.repair_record(raw, list(shop_view.columns), fixed={'gender': 'Female'})


def test_repair_record__range_inside_anchor_interval_is_kept(repairer, shop_view):
    # Setup
    raw = {'gender': 'Male', 'age': '[18, 24)'}

    # Run
    record = repairer.repair_record(raw, ['gender', 'age'], fixed={'age': Range(18.0, 30.0)},
                                    extra_labels={'age': {'[18, 24)': (18.0, 24.0)}})

    # Assert
    assert record == {'gender': 'Male', 'age': Range(18.0, 24.0)}


def test_check_record__discard_counted_in_the_ledger(repairer, shop_view):
    # Run
    record = repairer.check_record({'city': 'Atlantis'}, list(shop_view.columns))

    # Assert
    assert record is None
    assert repairer.usage.discarded == {'unknown_category': 1}


# --------------------------------------------------------------------------- households
@pytest.fixture
def household_view():
    state = make_state(household_spec(), HOUSEHOLD_METADATA, 'households', 'persons')
    return build_table_view(state)


def test_repair_household__members_and_size(household_view):
    # Setup
    parent = household_view.repairer(UsageLedger(), Counter())
    child = household_view.repairer(parent.usage, parent.repairs, child=True)
    keys = HouseholdKeys()
    raw = {'tenure': 'owned', 'household_size': 3,
           'persons': [{'age': '[18, 65)', 'sex': 'Female'}, {'age': '[0, 18)', 'sex': 'Male'}]}

    # Run
    household, persons = repair_household(household_view, raw, parent, child, keys)

    # Assert
    assert household == {'tenure': 'Owned', 'persons__count': 2}
    assert persons == [{'age': Range(18.0, 65.0), 'sex': 'Female'},
                       {'age': Range(0.0, 18.0), 'sex': 'Male'}]
    assert parent.repairs['household_size'] == 1
    assert household_view.sizes == [1, 2, 3]


@pytest.mark.parametrize('raw, reason', [
    ({'tenure': 'Owned', 'persons': []}, 'empty_household'),
    ({'tenure': 'Owned', 'persons': 'two adults'}, 'invalid_household'),
    ({'tenure': 'Owned', 'persons': [{'age': '[18, 65)', 'sex': 'Female'}] * 4},
     'household_size_mismatch'),
])
def test_repair_household__unusable_households_are_rejected(household_view, raw, reason):
    # Setup
    parent = household_view.repairer(UsageLedger(), Counter())
    child = household_view.repairer(parent.usage, parent.repairs, child=True)

    # Run and Assert
    with pytest.raises(RejectedProposal, match=re.escape(reason)):
        repair_household(household_view, raw, parent, child, HouseholdKeys())


def test_repair_household__anchored_member_keeps_its_values(household_view):
    # Setup
    parent = household_view.repairer(UsageLedger(), Counter())
    child = household_view.repairer(parent.usage, parent.repairs, child=True)
    raw = {'tenure': 'Rented', 'household_size': 1,
           'anchor_person': {'age': '[65, 100]', 'sex': 'Female'}, 'other_persons': []}

    # Run
    household, persons = repair_household(
        household_view, raw, parent, child, HouseholdKeys(),
        person_fixed={'age': Range(65.0, 100.0)})

    # Assert
    assert persons == [{'age': Range(65.0, 100.0), 'sex': 'Female'}]
    assert household['persons__count'] == 1


# --------------------------------------------------------------------------- LLM calls
def test_call_llm__valid_reply_records_the_call():
    # Setup
    client = ScriptedClient([ScriptedReply(data={'city': 'Paris'}, prompt_tokens=30,
                                           completion_tokens=5)])
    usage = UsageLedger()

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {'temperature': 0.5}, usage)

    # Assert
    assert result.data == {'city': 'Paris'}
    assert (usage.llm_calls, usage.prompt_tokens, usage.completion_tokens) == (1, 30, 5)


def test_call_llm__non_json_twice_is_invalid_json_and_both_calls_counted():
    # Setup
    client = ScriptedClient(['no idea', 'still no idea'])
    usage = UsageLedger()

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {}, usage)

    # Assert
    assert result.data is None
    assert result.failure == 'invalid_json'
    assert usage.llm_calls == 2


def test_call_llm__refusal():
    # Setup
    client = ScriptedClient([ScriptedReply(refusal='I cannot help with that.')])

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {}, UsageLedger())

    # Assert
    assert result.failure == 'refusal'


def test_call_llm__off_schema_reply_is_salvaged_for_repair():
    # Setup
    client = ScriptedClient([{'city': 'paris'}, {'city': 'PARIS'}])

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {}, UsageLedger())

    # Assert
    assert result.salvaged
    assert result.data == {'city': 'PARIS'}


def test_call_llm__transport_error_does_not_raise():
    # Setup
    client = ScriptedClient([LLMTransportError('endpoint down', status_code=503, attempts=4)])

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {}, UsageLedger())

    # Assert
    assert result.failure == 'transport_error'


def test_call_llm__timeout_does_not_raise():
    # Setup
    client = ScriptedClient([TimeoutError('slow')])

    # Run
    result = call_llm(client, MESSAGES, SCHEMA, {}, UsageLedger())

    # Assert
    assert result.failure == 'transport_error'


def test_call_llm__authentication_error_is_raised():
    # Setup
    client = ScriptedClient([LLMRequestError('The endpoint rejected the key.', status_code=401)])

    # Run and Assert
    with pytest.raises(LLMRequestError, match=re.escape('The endpoint rejected the key.')):
        call_llm(client, MESSAGES, SCHEMA, {}, UsageLedger())


def test_call_llm__cached_reply_counts_as_cached(tmp_path):
    # Setup
    first = ScriptedClient([{'city': 'Lyon'}], cache_dir=str(tmp_path))
    call_llm(first, MESSAGES, SCHEMA, {'seed': 1}, UsageLedger())
    second = ScriptedClient([], cache_dir=str(tmp_path))
    usage = UsageLedger()

    # Run
    result = call_llm(second, MESSAGES, SCHEMA, {'seed': 1}, usage)

    # Assert
    assert result.cached
    assert result.data == {'city': 'Lyon'}
    assert (usage.llm_calls, usage.cached_calls) == (0, 1)
