import re

import pytest

from sdv_llmsynthor.errors import LLMOutputError, LLMRefusalError
from sdv_llmsynthor.llm.structured import (
    RawCompletion,
    build_reask_messages,
    extract_json_object,
    get_validator,
    normalize_messages,
    normalize_params,
    run_structured_completion,
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


def test_build_reask_messages__quotes_reply_and_problem():
    # Setup
    messages = [{'role': 'user', 'content': 'Give me a city.'}]

    # Run
    result = build_reask_messages(messages, 'oops', 'the reply contains no JSON object')

    # Assert
    assert messages == [{'role': 'user', 'content': 'Give me a city.'}]
    assert result[1] == {'role': 'assistant', 'content': 'oops'}
    assert result[2]['role'] == 'user'
    assert 'the reply contains no JSON object' in result[2]['content']


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


def test_run_structured_completion__truncated_reply_is_explained():
    # Setup
    send, _ = _sender([RawCompletion('{"age": 1, "ci', finish_reason='length')])

    # Run and Assert
    with pytest.raises(LLMOutputError, match=re.escape('(the reply was cut off at max_tokens)')):
        run_structured_completion(
            send, [{'role': 'user', 'content': 'Q'}], SCHEMA, {}, UsageTracker(), max_reasks=0
        )


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
