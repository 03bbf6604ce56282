import json
import re

import pytest

from sdv_llmsynthor.errors import LLMOutputError, LLMRefusalError, LLMTruncatedOutputError
from sdv_llmsynthor.llm.structured import (
    MAX_PROBLEM_CHARS,
    RawCompletion,
    build_reask_messages,
    estimate_reply_tokens,
    estimate_text_tokens,
    extract_json_object,
    get_validator,
    normalize_messages,
    normalize_params,
    run_structured_completion,
    salvage_truncated_json,
    schema_errors,
    truncate,
    with_system_text,
)
from sdv_llmsynthor.llm.usage import UsageTracker

SCHEMA = {
    'type': 'object',
    'properties': {
        'age': {'type': 'integer', 'minimum': 0, 'maximum': 120},
        'city': {'type': 'string', 'enum': ['Lyon', 'Nice']},
    },
    'required': ['age', 'city'],
    'additionalProperties': False,
}


@pytest.mark.parametrize(
    ('text', 'expected'),
    [
        ('{"a": 1}', {'a': 1}),
        ('  \n{"a": {"b": [1, 2]}}\n', {'a': {'b': [1, 2]}}),
        ('```json\n{"a": 1}\n```', {'a': 1}),
        ('```\n{"a": 1}\n```', {'a': 1}),
        ('Sure! Here it is:\n```json\n{"a": "x}y"}\n```\nHope this helps.', {'a': 'x}y'}),
        ('The answer is {"a": 1, "b": "{x}"} and more text {"c": 2}', {'a': 1, 'b': '{x}'}),
        ('{"a": 1, "b": [1, 2,],}', {'a': 1, 'b': [1, 2]}),
        ("{'a': 'x', 'b': 2}", {'a': 'x', 'b': 2}),
        ("{'a': [1, 2,],}", {'a': [1, 2]}),
        ('{"text": "a, }"}', {'text': 'a, }'}),
    ],
)
def test_extract_json_object__recovers_objects(text, expected):
    # Run
    result = extract_json_object(text)

    # Assert
    assert result == expected


def test_extract_json_object__keeps_commas_inside_strings():
    # Setup
    text = '{"text": "a,]", "b": 1,}'

    # Run
    result = extract_json_object(text)

    # Assert
    assert result == {'text': 'a,]', 'b': 1}


def test_extract_json_object__mixed_quotes_are_not_repaired():
    # Setup: single quotes next to double quotes are ambiguous, so no swap is attempted
    text = """{'name': "O'Brien"}"""

    # Run and Assert
    with pytest.raises(ValueError, match=re.escape('the reply is not valid JSON')):
        extract_json_object(text)


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('', 'the reply is empty'),
        ('   ', 'the reply is empty'),
        ('I cannot do that.', 'the reply contains no JSON object'),
        ('[1, 2, 3]', 'the reply contains no JSON object'),
        ('{"a": 1', 'the reply is not valid JSON'),
    ],
)
def test_extract_json_object__fails_without_object(text, message):
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape(message)):
        extract_json_object(text)


def test_schema_errors__names_json_paths():
    # Setup
    schema = {
        'type': 'object',
        'properties': {'rows': {'type': 'array', 'items': SCHEMA}},
        'required': ['rows'],
    }
    data = {'rows': [{'age': 30, 'city': 'Lyon'}, {'age': 600, 'city': 'Paris'}]}

    # Run
    problems = schema_errors(data, schema)

    # Assert
    assert problems == [
        '$.rows[1].age: 600 is greater than the maximum of 120',
        "$.rows[1].city: 'Paris' is not one of ['Lyon', 'Nice']",
    ]


def test_schema_errors__valid_data():
    # Run
    problems = schema_errors({'age': 3, 'city': 'Nice'}, SCHEMA)

    # Assert
    assert problems == []


def test_get_validator__invalid_schema():
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("The 'schema' parameter is not a valid JSON")):
        get_validator({'type': 'no-such-type'})

    with pytest.raises(ValueError, match=re.escape("The 'schema' parameter must be a JSON Schema")):
        get_validator(['not', 'a', 'dict'])


def test_truncate__marks_the_cut():
    # Run
    result = truncate('x' * 30, 10)

    # Assert
    assert result == 'xxxxxxxxxx... [20 more characters]'
    assert truncate('short', 10) == 'short'


def test_with_system_text__does_not_mutate():
    # Setup
    messages = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'}]
    without_system = [{'role': 'user', 'content': 'Hi'}]

    # Run
    result = with_system_text(messages, 'SCHEMA')
    inserted = with_system_text(without_system, 'SCHEMA')

    # Assert
    assert result[0] == {'role': 'system', 'content': 'Be brief.\n\nSCHEMA'}
    assert messages[0] == {'role': 'system', 'content': 'Be brief.'}
    assert inserted == [{'role': 'system', 'content': 'SCHEMA'}, {'role': 'user', 'content': 'Hi'}]
    assert without_system == [{'role': 'user', 'content': 'Hi'}]


@pytest.mark.parametrize('messages', [[], 'hello', None, [{'role': 'robot', 'content': 'x'}],
                                      [{'role': 'user', 'content': 3}]])
def test_normalize_messages__rejects_malformed(messages):
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape('must be')):
        normalize_messages(messages)


def test_normalize_params__unknown_and_none():
    # Run
    params = normalize_params({'temperature': 0.2, 'seed': None, 'max_tokens': 50})

    # Assert
    assert params == {'max_tokens': 50, 'temperature': 0.2}
    with pytest.raises(TypeError, match=re.escape("Unknown sampling parameters ['stream']")):
        normalize_params({'stream': True})


def test_build_reask_messages__quotes_problem_not_reply():
    # Setup
    messages = [{'role': 'user', 'content': 'Give me a city.'}]

    # Run
    result = build_reask_messages(messages, 'the reply contains no JSON object')

    # Assert
    assert messages == [{'role': 'user', 'content': 'Give me a city.'}]
    assert len(result) == 2
    assert result[1]['role'] == 'user'
    assert 'the reply contains no JSON object' in result[1]['content']


def test_build_reask_messages__long_problem_is_cut():
    # Setup
    problem = 'x' * 5000

    # Run
    result = build_reask_messages([{'role': 'user', 'content': 'Q'}], problem)

    # Assert
    assert len(result[1]['content']) < MAX_PROBLEM_CHARS + 200
    assert '[4700 more characters]' in result[1]['content']


def _sender(replies):
    sent = []

    def send(messages, schema, params):
        sent.append(messages)
        return replies.pop(0)

    return send, sent


def test_run_structured_completion__reask_then_success():
    # Setup
    usage = UsageTracker()
    send, sent = _sender([
        RawCompletion('{"age": 700, "city": "Lyon"}', 10, 5),
        RawCompletion('{"age": 70, "city": "Lyon"}', 20, 5),
    ])
    messages = [{'role': 'user', 'content': 'Q'}]

    # Run
    result = run_structured_completion(send, messages, SCHEMA, {}, usage)

    # Assert
    assert result.data == {'age': 70, 'city': 'Lyon'}
    assert (result.attempts, result.prompt_tokens, result.completion_tokens) == (2, 30, 10)
    assert '$.age: 700 is greater than the maximum of 120' in sent[1][-1]['content']
    assert messages == [{'role': 'user', 'content': 'Q'}]
    assert usage.as_dict()['llm_calls'] == 2
    assert usage.as_dict()['reasks'] == 1


def test_run_structured_completion__gives_up_after_reask():
    # Setup
    usage = UsageTracker()
    send, _ = _sender([RawCompletion('nope', 1, 1), RawCompletion('{"age": 1}', 1, 1)])

    # Run and Assert
    with pytest.raises(LLMOutputError) as info:
        run_structured_completion(send, [{'role': 'user', 'content': 'Q'}], SCHEMA, {}, usage)

    assert info.value.attempts == 2
    assert info.value.discard_reason == 'schema_violation'
    assert info.value.last_text == '{"age": 1}'
    assert "$: 'city' is a required property" in str(info.value)


def test_run_structured_completion__truncated_reply_is_not_reasked():
    # Setup
    usage = UsageTracker()
    send, sent = _sender([RawCompletion('{"age": 1, "ci', 10, 40, finish_reason='length')])

    # Run
    with pytest.raises(LLMTruncatedOutputError) as info:
        run_structured_completion(
            send, [{'role': 'user', 'content': 'Q'}], SCHEMA, {'max_tokens': 40}, usage
        )

    # Assert
    assert len(sent) == 1
    assert usage.as_dict()['reasks'] == 0
    assert info.value.discard_reason == 'truncated_reply'
    assert info.value.max_tokens == 40
    assert info.value.last_text == '{"age": 1, "ci'
    assert 'cut off at max_tokens=40 after 40 tokens' in str(info.value)


def test_run_structured_completion__reask_does_not_grow_the_prompt():
    # Setup
    usage = UsageTracker()
    long_reply = '{"age": 700, "city": "' + 'L' * 5000 + '"}'
    send, sent = _sender([
        RawCompletion(long_reply, 10, 5),
        RawCompletion('not json', 12, 5),
        RawCompletion('{"age": 70, "city": "Lyon"}', 12, 5),
    ])
    messages = [{'role': 'system', 'content': 'S'}, {'role': 'user', 'content': 'Q'}]

    # Run
    result = run_structured_completion(send, messages, SCHEMA, {}, usage, max_reasks=2)

    # Assert
    assert result.attempts == 3
    first = sum(len(message['content']) for message in sent[0])
    for attempt in sent[1:]:
        assert attempt[:2] == messages
        assert len(attempt) == 3
        assert sum(len(message['content']) for message in attempt) < first + 500
    assert 'L' * 300 not in sent[1][-1]['content']
    assert 'the reply contains no JSON object' in sent[2][-1]['content']


def test_run_structured_completion__error_keeps_the_full_reply():
    # Setup
    reply = '{"age": 700, "city": "' + 'L' * 5000 + '"}'
    send, _ = _sender([RawCompletion(reply, 1, 1)])

    # Run
    with pytest.raises(LLMOutputError) as info:
        run_structured_completion(send, [{'role': 'user', 'content': 'Q'}], SCHEMA, {},
                                  UsageTracker(), max_reasks=0)

    # Assert
    assert info.value.last_text == reply


@pytest.mark.parametrize('raw', [
    RawCompletion('', refusal='I will not.'),
    RawCompletion('{"age": 1, "city": "Lyon"}', finish_reason='content_filter'),
])
def test_run_structured_completion__refusal(raw):
    # Setup
    send, sent = _sender([raw, RawCompletion('{"age": 1, "city": "Lyon"}')])

    # Run and Assert
    with pytest.raises(LLMRefusalError, match=re.escape('The model refused to answer')) as info:
        run_structured_completion(send, [{'role': 'user', 'content': 'Q'}], SCHEMA, {},
                                  UsageTracker())

    assert info.value.discard_reason == 'refusal'
    assert len(sent) == 1


RECORDS_SCHEMA = {
    'type': 'object',
    'properties': {
        'anchor_1': {
            'type': 'array', 'minItems': 4, 'maxItems': 4,
            'items': {
                'type': 'object',
                'properties': {
                    'age': {'enum': ['[18.05, 22.55)', '[22.55, 26.26)']},
                    'gender': {'enum': ['Female', 'Male']},
                    'weight': {'enum': [1, 2, 3]},
                },
                'required': ['age', 'gender', 'weight'],
                'additionalProperties': False,
            },
        },
    },
    'required': ['anchor_1'],
    'additionalProperties': False,
}


def test_salvage_truncated_json__keeps_complete_items():
    # Setup
    text = ('{"anchor_1": [{"age": "[18.05, 22.55)", "gender": "Female", "weight": 2}, '
            '{"age": "[22.55, 26.26)", "gender": "Male", "weight": 1}, {"age": "[22.5')

    # Run
    result = salvage_truncated_json(text)

    # Assert
    assert result == {'anchor_1': [
        {'age': '[18.05, 22.55)', 'gender': 'Female', 'weight': 2},
        {'age': '[22.55, 26.26)', 'gender': 'Male', 'weight': 1},
    ]}


def test_salvage_truncated_json__drops_a_partial_number_and_key():
    # Setup
    text = '{"a": [1, 2], "b": {"c": "x", "d": 12'

    # Run
    result = salvage_truncated_json(text)

    # Assert
    assert result == {'a': [1, 2], 'b': {'c': 'x'}}


def test_salvage_truncated_json__escaped_quotes_and_braces_in_strings():
    # Setup
    text = 'Here: {"a": ["x\\"}]{", "y"], "b": "unfinished \\" }'

    # Run
    result = salvage_truncated_json(text)

    # Assert
    assert result == {'a': ['x"}]{', 'y']}


@pytest.mark.parametrize('text', ['', 'no json here', '{"a', '{"a": "unfinished', None])
def test_salvage_truncated_json__nothing_complete(text):
    # Run and Assert
    assert salvage_truncated_json(text) is None


def test_salvage_truncated_json__complete_object_is_returned_whole():
    # Run and Assert
    assert salvage_truncated_json('{"a": [1, {"b": null}]} trailing') == {'a': [1, {'b': None}]}


def test_estimate_text_tokens__digits_cost_one_token_each():
    # Run and Assert
    assert estimate_text_tokens('12345') == 5
    assert estimate_text_tokens('Female') == 2
    assert estimate_text_tokens('"[18.05, 22.55)"') == 8 + 6
    assert estimate_text_tokens('') == 0


def test_estimate_reply_tokens__grows_with_max_items_and_columns():
    # Setup
    items = RECORDS_SCHEMA['properties']['anchor_1']
    twice = {**RECORDS_SCHEMA, 'properties': {'anchor_1': {**items, 'maxItems': 8}}}
    fewer_columns = {**RECORDS_SCHEMA, 'properties': {'anchor_1': {**items, 'items': {
        **items['items'], 'properties': {'gender': {'enum': ['Female', 'Male']}}}}}}

    # Run
    base = estimate_reply_tokens(RECORDS_SCHEMA, margin=0.0, extra=0)
    doubled = estimate_reply_tokens(twice, margin=0.0, extra=0)
    small = estimate_reply_tokens(fewer_columns, margin=0.0, extra=0)

    # Assert
    assert doubled - base == 4 * (doubled - base) // 4
    assert 1.9 < (doubled - 2) / (base - 2) < 2.1
    assert small < base / 2
    assert estimate_reply_tokens(RECORDS_SCHEMA) == int(-(-base * 1.15 // 1)) + 16


def test_estimate_reply_tokens__covers_a_full_reply():
    # Setup
    record = {'age': '[18.05, 22.55)', 'gender': 'Female', 'weight': 3}
    reply = json.dumps({'anchor_1': [record] * 4})

    # Run
    estimate = estimate_reply_tokens(RECORDS_SCHEMA, margin=0.0, extra=0)

    # Assert
    assert estimate >= estimate_text_tokens(reply)
    assert estimate < 2 * estimate_text_tokens(reply)


def test_estimate_reply_tokens__bounded_strings():
    # Setup
    free = {'type': 'object', 'properties': {'reason': {'type': 'string'}}}
    bounded = {'type': 'object', 'properties': {'reason': {'type': 'string', 'maxLength': 30}}}

    # Run and Assert
    assert estimate_reply_tokens(free, margin=0, extra=0) > 100
    assert estimate_reply_tokens(bounded, margin=0, extra=0) < 30
