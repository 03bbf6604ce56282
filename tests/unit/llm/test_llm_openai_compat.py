import email.utils
import json
import logging
import pickle
import re
import time

import pytest
from llm_fakes import FAKE_KEY, FakeReply, chat_body, error, ok

from sdv_llmsynthor.errors import (
    LLMConfigurationError,
    LLMOutputError,
    LLMRefusalError,
    LLMRequestError,
    LLMTransportError,
)
from sdv_llmsynthor.llm.openai_compat import DEFAULT_OPENAI_MODEL, OpenAICompatibleClient
from sdv_llmsynthor.llm.retry import RetryPolicy

SCHEMA = {
    'title': 'trip plan',
    'type': 'object',
    'properties': {
        'city': {'type': 'string', 'enum': ['Lyon', 'Nice']},
        'days': {'type': 'integer', 'minimum': 1, 'maximum': 14},
    },
    'required': ['city', 'days'],
    'additionalProperties': False,
}
MESSAGES = [{'role': 'system', 'content': 'You plan trips.'},
            {'role': 'user', 'content': 'Plan one trip.'}]
VALID = '{"city": "Nice", "days": 3}'
LLAMA_REJECTION = {'detail': [{'type': 'literal_error', 'loc': ['body', 'response_format', 'type'],
                               'msg': "Input should be 'text' or 'json_object'"}]}


def make_client(server, sleep=None, **kwargs):
    policy = RetryPolicy(sleep=sleep or (lambda seconds: None))
    kwargs.setdefault('api_key', FAKE_KEY)
    return OpenAICompatibleClient(model='fake-model', base_url=server.url, retry_policy=policy,
                                  **kwargs)


def test_complete_json__json_schema_mode(fake_server):
    # Setup
    fake_server.push(ok(VALID, prompt_tokens=40, completion_tokens=9))
    client = make_client(fake_server)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, temperature=0.2, seed=7, max_tokens=64,
                                    top_p=0.9)

    # Assert
    request = fake_server.requests[0]
    assert request['path'] == '/v1/chat/completions'
    assert request['headers']['authorization'] == f'Bearer {FAKE_KEY}'
    assert request['json']['response_format'] == {
        'type': 'json_schema',
        'json_schema': {'name': 'trip_plan', 'schema': SCHEMA, 'strict': True},
    }
    assert request['json']['messages'] == MESSAGES
    assert {name: request['json'][name] for name in ('temperature', 'seed', 'max_tokens',
                                                      'top_p', 'model')} == {
        'temperature': 0.2, 'seed': 7, 'max_tokens': 64, 'top_p': 0.9, 'model': 'fake-model'}
    assert response.data == {'city': 'Nice', 'days': 3}
    assert response.mode == 'json_schema'
    assert response.usage == {'prompt_tokens': 40, 'completion_tokens': 9}
    assert client.structured_output_mode == 'json_schema'


def test_complete_json__falls_back_to_json_object_and_remembers(fake_server):
    # Setup: llama.cpp's server rejects json_schema with HTTP 500
    def llama_like(body, headers):
        if (body.get('response_format') or {}).get('type') == 'json_schema':
            return FakeReply(500, LLAMA_REJECTION)
        return ok(VALID)

    fake_server.responder = llama_like
    client = make_client(fake_server)

    # Run
    first = client.complete_json(MESSAGES, SCHEMA)
    second = make_client(fake_server).complete_json(MESSAGES, SCHEMA)

    # Assert
    assert fake_server.response_formats() == ['json_schema', 'json_object', 'json_object']
    json_object_request = fake_server.requests[1]['json']
    assert json_object_request['response_format'] == {'type': 'json_object', 'schema': SCHEMA}
    system = json_object_request['messages'][0]
    assert system['role'] == 'system'
    assert system['content'].startswith('You plan trips.\n\nReply with one JSON object')
    assert '"enum":["Lyon","Nice"]' in system['content']
    assert (first.mode, second.mode) == ('json_object', 'json_object')
    assert client.usage.as_dict()['retries'] == 0
    assert 'structured output: json_object' in client.describe()


def test_complete_json__memory_is_per_endpoint_and_model(fake_server):
    # Setup
    fake_server.responder = lambda body, headers: (
        FakeReply(500, LLAMA_REJECTION)
        if (body.get('response_format') or {}).get('type') == 'json_schema' else ok(VALID))
    make_client(fake_server).complete_json(MESSAGES, SCHEMA)
    other_model = OpenAICompatibleClient(model='other', base_url=fake_server.url,
                                         api_key=FAKE_KEY)

    # Run
    other_model.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert fake_server.response_formats() == ['json_schema', 'json_object', 'json_schema',
                                              'json_object']


def test_complete_json__falls_back_to_text_with_fenced_json(fake_server):
    # Setup
    fake_server.push(
        error(400, "Unknown parameter: 'response_format.json_schema'"),
        error(422, "response_format type 'json_object' is not supported by this model"),
        ok(f'Here you go:\n```json\n{VALID}\n```'),
    )
    client = make_client(fake_server)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert fake_server.response_formats() == ['json_schema', 'json_object', 'text']
    assert 'response_format' not in fake_server.requests[2]['json']
    assert 'JSON Schema' in fake_server.requests[2]['json']['messages'][0]['content']
    assert response.data == {'city': 'Nice', 'days': 3}
    assert response.mode == 'text'
    assert client.structured_output_mode == 'text'


def test_complete_json__unrelated_400_is_an_error(fake_server):
    # Setup
    fake_server.push(error(400, 'This model does not support the temperature parameter'))
    client = make_client(fake_server)

    # Run and Assert
    msg = 'answered HTTP 400: Error code: 400'
    with pytest.raises(LLMRequestError, match=re.escape(msg)) as info:
        client.complete_json(MESSAGES, SCHEMA, temperature=0.1)

    assert info.value.status_code == 400
    assert len(fake_server.requests) == 1


def test_complete_json__retries_rate_limit_with_retry_after(fake_server, recording_sleep):
    # Setup
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    fake_server.push(
        error(429, 'Rate limit reached', {'Retry-After': '2'}),
        error(429, 'Rate limit reached', {'Retry-After': later}),
        error(503, 'overloaded'),
        ok(VALID),
    )
    client = make_client(fake_server, sleep=recording_sleep)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert response.data == {'city': 'Nice', 'days': 3}
    assert recording_sleep.delays[0] == 2.0
    assert 17 <= recording_sleep.delays[1] <= 20
    assert 0 <= recording_sleep.delays[2] <= 2.0
    assert client.usage.as_dict()['retries'] == 3
    assert client.usage.as_dict()['llm_calls'] == 1
    assert fake_server.response_formats() == ['json_schema'] * 4


def test_complete_json__retry_after_is_capped(fake_server, recording_sleep):
    # Setup
    fake_server.push(error(429, 'slow down', {'Retry-After': '86400'}), ok(VALID))
    client = make_client(fake_server, sleep=recording_sleep)

    # Run
    client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert recording_sleep.delays == [60.0]


def test_complete_json__gives_up_after_max_retries(fake_server, recording_sleep):
    # Setup
    fake_server.responder = lambda body, headers: error(500, 'internal error')
    client = make_client(fake_server, sleep=recording_sleep, max_retries=3)

    # Run and Assert
    msg = f'{fake_server.url} failed after 4 attempt(s): Error code: 500'
    with pytest.raises(LLMTransportError, match=re.escape(msg)) as info:
        client.complete_json(MESSAGES, SCHEMA)

    assert info.value.attempts == 4
    assert info.value.status_code == 500
    assert len(recording_sleep.delays) == 3
    assert all(0 <= delay <= 0.5 * 2 ** index for index, delay in enumerate(
        recording_sleep.delays))
    assert client.usage.as_dict()['llm_calls'] == 0


def test_complete_json__timeout_is_retried(fake_server, recording_sleep):
    # Setup
    fake_server.push(FakeReply(200, chat_body(VALID), delay=1.0), ok(VALID))
    client = make_client(fake_server, sleep=recording_sleep, timeout=0.3)

    # Run
    start = time.perf_counter()
    response = client.complete_json(MESSAGES, SCHEMA)
    elapsed = time.perf_counter() - start

    # Assert
    assert response.data == {'city': 'Nice', 'days': 3}
    assert len(recording_sleep.delays) == 1
    assert elapsed < 0.95


def test_complete_json__connection_error(recording_sleep):
    # Setup: nothing listens on this port
    client = OpenAICompatibleClient(
        model='m', base_url='http://127.0.0.1:9/v1', api_key=FAKE_KEY, max_retries=1,
        retry_policy=RetryPolicy(sleep=recording_sleep))

    # Run and Assert
    with pytest.raises(LLMTransportError, match=re.escape('failed after 2 attempt(s): connection')):
        client.complete_json(MESSAGES, SCHEMA)


def test_complete_json__authentication_error_is_not_retried(fake_server, recording_sleep):
    # Setup: the endpoint echoes the key it received, as some proxies do
    fake_server.responder = lambda body, headers: error(
        401, f"Incorrect API key provided: {headers.get('authorization')}")
    client = make_client(fake_server, sleep=recording_sleep)

    # Run
    with pytest.raises(LLMRequestError) as info:
        client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert info.value.status_code == 401
    assert recording_sleep.delays == []
    assert FAKE_KEY not in str(info.value)
    assert 'Incorrect API key provided: Bearer ***' in str(info.value)
    assert info.value.__cause__ is None


def test_complete_json__reasks_invalid_json(fake_server):
    # Setup
    fake_server.push(ok('{"city": "Nice", "days": 30}'), ok(VALID))
    client = make_client(fake_server)
    messages = [dict(message) for message in MESSAGES]

    # Run
    response = client.complete_json(messages, SCHEMA)

    # Assert
    reask = fake_server.requests[1]['json']['messages']
    assert reask[:2] == MESSAGES
    assert len(reask) == 3
    assert reask[2]['role'] == 'user'
    assert '$.days: 30 is greater than the maximum of 14' in reask[2]['content']
    assert messages == MESSAGES
    assert response.usage == {'prompt_tokens': 22, 'completion_tokens': 14}
    assert client.usage.as_dict()['reasks'] == 1


def test_complete_json__invalid_twice_raises_output_error(fake_server):
    # Setup
    fake_server.push(ok('I would go to Nice.'), ok('Nice, 3 days'))
    client = make_client(fake_server)

    # Run and Assert
    with pytest.raises(LLMOutputError, match=re.escape('after 2 attempt(s)')) as info:
        client.complete_json(MESSAGES, SCHEMA)

    assert info.value.discard_reason == 'invalid_json'
    assert info.value.last_text == 'Nice, 3 days'


@pytest.mark.parametrize('reply', [
    ok('', refusal="I'm sorry, I can't help with that."),
    ok(VALID, finish_reason='content_filter'),
])
def test_complete_json__refusal(fake_server, reply):
    # Setup
    fake_server.push(reply)
    client = make_client(fake_server)

    # Run and Assert
    with pytest.raises(LLMRefusalError, match=re.escape('The model refused to answer')):
        client.complete_json(MESSAGES, SCHEMA)

    assert len(fake_server.requests) == 1


def test_complete_json__cache_hit_makes_no_request(fake_server, tmp_path):
    # Setup
    fake_server.push(ok(VALID))
    make_client(fake_server, cache_dir=tmp_path).complete_json(MESSAGES, SCHEMA, seed=3)
    client = make_client(fake_server, cache_dir=tmp_path)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, seed=3)

    # Assert
    assert response.cached is True
    assert response.data == {'city': 'Nice', 'days': 3}
    assert len(fake_server.requests) == 1
    assert client.usage.as_dict()['cached_calls'] == 1


def test_map_complete_json__through_http(fake_server):
    # Setup
    def respond(body, headers):
        days = int(body['messages'][-1]['content'])
        time.sleep(0.02)
        return ok(json.dumps({'city': 'Lyon', 'days': days}))

    fake_server.responder = respond
    client = make_client(fake_server, max_concurrency=3)
    requests = [([{'role': 'user', 'content': str(days)}], SCHEMA) for days in range(1, 8)]

    # Run
    results = client.map_complete_json(requests)

    # Assert
    assert [result.data['days'] for result in results] == list(range(1, 8))
    assert client.usage.as_dict()['llm_calls'] == 7


def test_api_key__never_leaks(fake_server, tmp_path, caplog):
    # Setup
    caplog.set_level(logging.DEBUG)
    fake_server.push(
        error(500, 'response_format json_schema is not supported'),
        error(503, f"upstream said: key {FAKE_KEY} overloaded"),
        ok(VALID),
        error(403, f'Forbidden for key {FAKE_KEY}'),
    )
    client = make_client(fake_server, cache_dir=tmp_path / 'cache')
    client.complete_json(MESSAGES, SCHEMA, seed=1)

    # Run
    with pytest.raises(LLMRequestError) as info:
        client.complete_json(MESSAGES, SCHEMA, seed=2)

    (tmp_path / 'client.pkl').write_bytes(pickle.dumps(client))
    restored = pickle.loads((tmp_path / 'client.pkl').read_bytes())

    # Assert
    assert FAKE_KEY not in str(info.value)
    assert FAKE_KEY not in repr(info.value)
    assert FAKE_KEY not in repr(client)
    assert FAKE_KEY not in client.describe()
    assert FAKE_KEY not in caplog.text
    assert 'key *** overloaded' in caplog.text
    assert FAKE_KEY not in repr(vars(restored))
    files = [path for path in tmp_path.rglob('*') if path.is_file()]
    assert len(files) == 2
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes()
        assert b'SECRET123' not in path.read_bytes()


def test_pickle__restored_client_reads_key_from_environment(fake_server, monkeypatch):
    # Setup
    fake_server.push(ok(VALID))
    client = make_client(fake_server)
    restored = pickle.loads(pickle.dumps(client))
    monkeypatch.setenv('LLMSYNTHOR_API_KEY', 'sk-from-env-0001')

    # Run
    restored.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert fake_server.requests[0]['headers']['authorization'] == 'Bearer sk-from-env-0001'


def test_repr_and_describe__redact_url_credentials():
    # Setup
    client = OpenAICompatibleClient(model='m', base_url='https://user:pw123456@host.example/v1/?k=zz')

    # Run
    text = repr(client) + client.describe()

    # Assert
    assert repr(client) == (
        "OpenAICompatibleClient(model='m', base_url='https://host.example/v1', api_key='***')")
    assert 'pw123456' not in text
    assert 'k=zz' not in text


def test_init__environment_fallbacks(monkeypatch, fake_server):
    # Setup
    monkeypatch.setenv('LLMSYNTHOR_BASE_URL', fake_server.url)
    monkeypatch.setenv('LLMSYNTHOR_MODEL', 'env-model')
    monkeypatch.setenv('OPENAI_API_KEY', 'sk-openai-fallback')
    fake_server.push(ok(VALID))

    # Run
    client = OpenAICompatibleClient()
    client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert (client.model, client.base_url) == ('env-model', fake_server.url)
    assert fake_server.requests[0]['json']['model'] == 'env-model'
    assert fake_server.requests[0]['headers']['authorization'] == 'Bearer sk-openai-fallback'


def test_init__llmsynthor_key_wins_over_openai_key(monkeypatch, fake_server):
    # Setup
    monkeypatch.setenv('LLMSYNTHOR_API_KEY', 'sk-llmsynthor-key')
    monkeypatch.setenv('OPENAI_API_KEY', 'sk-openai-key')
    fake_server.push(ok(VALID))

    # Run
    OpenAICompatibleClient(model='m', base_url=fake_server.url).complete_json(MESSAGES, SCHEMA)

    # Assert
    assert fake_server.requests[0]['headers']['authorization'] == 'Bearer sk-llmsynthor-key'


def test_init__defaults_and_configuration_errors(monkeypatch):
    # Setup
    monkeypatch.setenv('OPENAI_API_KEY', 'sk-x1234')

    # Run
    default = OpenAICompatibleClient()

    # Assert
    assert default.model == DEFAULT_OPENAI_MODEL
    assert default.describe() == (
        "OpenAI-compatible endpoint https://api.openai.com/v1, model 'gpt-4.1-nano', "
        'structured output: not probed yet')
    with pytest.raises(LLMConfigurationError, match=re.escape('No model given for the endpoint')):
        OpenAICompatibleClient(base_url='http://localhost:8000/v1')

    monkeypatch.delenv('OPENAI_API_KEY')
    with pytest.raises(LLMConfigurationError, match=re.escape('No API key for OpenAI')):
        OpenAICompatibleClient(model='gpt-4.1-nano')

    local = OpenAICompatibleClient(model='m', base_url='http://localhost:8000/v1')
    assert local.model == 'm'
