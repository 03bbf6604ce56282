import re
import threading
import time

import pytest

from sdv_llmsynthor.errors import LLMOutputError, LLMRefusalError, LLMTransportError
from sdv_llmsynthor.llm.base import LLMResponse
from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply

SCHEMA = {
    'type': 'object',
    'properties': {
        'city': {'type': 'string', 'enum': ['Lyon', 'Nice']},
        'n': {'type': 'integer', 'minimum': 1, 'maximum': 5},
    },
    'required': ['city', 'n'],
}
MESSAGES = [{'role': 'system', 'content': 'You plan trips.'},
            {'role': 'user', 'content': 'One city.'}]


def test_complete_json__valid_reply():
    # Setup
    client = ScriptedClient([ScriptedReply(data={'city': 'Lyon', 'n': 2}, prompt_tokens=30,
                                           completion_tokens=8)])

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, temperature=0.3, seed=4)

    # Assert
    assert response == LLMResponse(
        data={'city': 'Lyon', 'n': 2},
        usage={'prompt_tokens': 30, 'completion_tokens': 8},
        cached=False,
        model='scripted',
        mode='scripted',
    )
    assert client.calls[0]['params'] == {'seed': 4, 'temperature': 0.3}
    assert client.usage.as_dict()['llm_calls'] == 1


def test_complete_json__reask_does_not_mutate_messages():
    # Setup
    client = ScriptedClient(['Sure, Lyon!', '```json\n{"city": "Lyon", "n": 1}\n```'])
    messages = [dict(message) for message in MESSAGES]

    # Run
    response = client.complete_json(messages, SCHEMA)

    # Assert
    assert response.data == {'city': 'Lyon', 'n': 1}
    assert messages == MESSAGES
    assert len(client.calls) == 2
    assert client.calls[1]['messages'][:2] == MESSAGES
    assert len(client.calls[1]['messages']) == 3
    assert client.calls[1]['messages'][2]['role'] == 'user'
    assert 'the reply contains no JSON object' in client.calls[1]['messages'][2]['content']
    assert client.usage.as_dict()['reasks'] == 1


@pytest.mark.parametrize(
    ('replies', 'reason'),
    [
        (['no json', 'still no json'], 'invalid_json'),
        ([{'city': 'Paris', 'n': 1}, {'city': 'Lyon', 'n': 9}], 'schema_violation'),
    ],
)
def test_complete_json__invalid_twice(replies, reason):
    # Setup
    client = ScriptedClient(replies)

    # Run
    with pytest.raises(LLMOutputError) as info:
        client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert info.value.discard_reason == reason
    assert info.value.attempts == 2
    assert client.usage.as_dict()['llm_calls'] == 2
    assert client.remaining == 0


def test_complete_json__refusal_is_not_reasked():
    # Setup
    client = ScriptedClient([ScriptedReply(refusal='No.'), {'city': 'Lyon', 'n': 1}])

    # Run and Assert
    with pytest.raises(LLMRefusalError, match=re.escape('The model refused to answer: No.')):
        client.complete_json(MESSAGES, SCHEMA)

    assert client.remaining == 1


def test_complete_json__scripted_exception_propagates():
    # Setup
    client = ScriptedClient([LLMTransportError('down', attempts=6)])

    # Run and Assert
    with pytest.raises(LLMTransportError, match=re.escape('down')):
        client.complete_json(MESSAGES, SCHEMA)

    assert client.usage.as_dict()['llm_calls'] == 0


def test_complete_json__bad_arguments():
    # Setup
    client = ScriptedClient([])

    # Run and Assert
    with pytest.raises(TypeError, match=re.escape("Unknown sampling parameters ['stream']")):
        client.complete_json(MESSAGES, SCHEMA, stream=True)

    with pytest.raises(ValueError, match=re.escape("The 'schema' parameter is not a valid JSON")):
        client.complete_json(MESSAGES, {'type': 12})

    assert client.calls == []


def test_complete_json__cache_hit_makes_no_call(tmp_path):
    # Setup
    first = ScriptedClient([{'city': 'Nice', 'n': 3}], cache_dir=tmp_path)
    first.complete_json(MESSAGES, SCHEMA, seed=1)
    second = ScriptedClient([], cache_dir=tmp_path)

    # Run
    response = second.complete_json(MESSAGES, SCHEMA, seed=1)

    # Assert
    assert response.data == {'city': 'Nice', 'n': 3}
    assert response.cached is True
    assert response.usage == {'prompt_tokens': 0, 'completion_tokens': 0}
    assert second.calls == []
    assert second.usage.as_dict()['cached_calls'] == 1
    assert second.usage.as_dict()['llm_calls'] == 0


def test_complete_json__cache_miss_on_other_seed(tmp_path):
    # Setup
    ScriptedClient([{'city': 'Nice', 'n': 3}], cache_dir=tmp_path).complete_json(
        MESSAGES, SCHEMA, seed=1)
    client = ScriptedClient([{'city': 'Lyon', 'n': 2}], cache_dir=tmp_path)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, seed=2)

    # Assert
    assert response.data == {'city': 'Lyon', 'n': 2}
    assert response.cached is False


def test_complete_json__cached_payload_failing_schema_is_replaced(tmp_path):
    # Setup: the same key, but the cached object breaks the (tightened) schema
    loose = {**SCHEMA, 'properties': {**SCHEMA['properties'], 'n': {'type': 'integer'}}}
    client = ScriptedClient([{'city': 'Nice', 'n': 50}], cache_dir=tmp_path)
    client.complete_json(MESSAGES, loose)
    key = client.cache.make_key('scripted', 'scripted', MESSAGES, loose, {})
    path = client.cache.path_for(key)
    path.write_text(path.read_text().replace('"n": 50', '"n": "fifty"'))
    retry_client = ScriptedClient([{'city': 'Nice', 'n': 4}], cache_dir=tmp_path)

    # Run
    response = retry_client.complete_json(MESSAGES, loose)
    again = ScriptedClient([], cache_dir=tmp_path).complete_json(MESSAGES, loose)

    # Assert
    assert response.cached is False
    assert len(retry_client.calls) == 1
    assert again.cached is True
    assert again.data == {'city': 'Nice', 'n': 4}


def test_complete_json__failed_output_is_not_cached(tmp_path):
    # Setup
    client = ScriptedClient(['x', 'y', {'city': 'Lyon', 'n': 1}], cache_dir=tmp_path)
    with pytest.raises(LLMOutputError):
        client.complete_json(MESSAGES, SCHEMA)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert response.cached is False
    assert response.data == {'city': 'Lyon', 'n': 1}


def test_map_complete_json__order_and_errors():
    # Setup
    def respond(messages, schema, params):
        text = messages[0]['content']
        if text == 'bad':
            return 'not json'
        if text == 'boom':
            return RuntimeError('boom')
        time.sleep(0.01 * (5 - int(text)))
        return {'city': 'Lyon', 'n': int(text)}

    client = ScriptedClient(respond, max_concurrency=3)
    requests = [([{'role': 'user', 'content': content}], SCHEMA, {'seed': 1})
                for content in ['1', 'bad', '2', 'boom', '3']]
    requests.append(([{'role': 'user', 'content': '4'}], SCHEMA))

    # Run
    results = client.map_complete_json(requests)

    # Assert
    assert [result.data['n'] for result in results if isinstance(result, LLMResponse)] == [
        1, 2, 3, 4]
    assert isinstance(results[1], LLMOutputError)
    assert isinstance(results[3], RuntimeError)
    assert client.usage.as_dict()['llm_calls'] == 6


def test_map_complete_json__bounded_concurrency():
    # Setup
    active = []
    peak = []
    lock = threading.Lock()

    def respond(messages, schema, params):
        with lock:
            active.append(1)
            peak.append(len(active))
        time.sleep(0.02)
        with lock:
            active.pop()
        return {'city': 'Nice', 'n': 1}

    client = ScriptedClient(respond)
    requests = [([{'role': 'user', 'content': str(index)}], SCHEMA) for index in range(8)]

    # Run
    results = client.map_complete_json(requests, max_concurrency=2)

    # Assert
    assert all(isinstance(result, LLMResponse) for result in results)
    assert max(peak) == 2


def test_map_complete_json__malformed_request_and_bad_concurrency():
    # Setup
    client = ScriptedClient([{'city': 'Nice', 'n': 1}])

    # Run
    results = client.map_complete_json([('only messages',), (MESSAGES, SCHEMA)])

    # Assert
    assert isinstance(results[0], ValueError)
    assert results[1].data == {'city': 'Nice', 'n': 1}
    with pytest.raises(ValueError, match=re.escape("The 'max_concurrency' parameter must be")):
        client.map_complete_json([], max_concurrency=0)
