import pickle
import re

import pytest

from sdv_llmsynthor.llm.testing import ScriptedClient, ScriptedReply

SCHEMA = {'type': 'object', 'properties': {'a': {'type': 'integer'}}, 'required': ['a']}
MESSAGES = [{'role': 'user', 'content': 'Give me a.'}]


def test_scripted_client__records_calls_as_copies():
    # Setup
    client = ScriptedClient([{'a': 1}])
    messages = [dict(MESSAGES[0])]

    # Run
    client.complete_json(messages, SCHEMA, max_tokens=20)
    messages[0]['content'] = 'changed'

    # Assert
    assert client.calls == [{'messages': MESSAGES, 'schema': SCHEMA, 'params': {'max_tokens': 20}}]


def test_scripted_client__runs_out():
    # Setup
    client = ScriptedClient([])

    # Run and Assert
    msg = 'ScriptedClient ran out of scripted replies after 0 requests.'
    with pytest.raises(RuntimeError, match=re.escape(msg)):
        client.complete_json(MESSAGES, SCHEMA)


def test_scripted_client__token_estimates_and_overrides():
    # Setup
    client = ScriptedClient([ScriptedReply(text='{"a": 12345678}'),
                             ScriptedReply(data={'a': 1}, prompt_tokens=0, completion_tokens=0)])

    # Run
    first = client.complete_json(MESSAGES, SCHEMA)
    second = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert first.usage['completion_tokens'] == len('{"a": 12345678}') // 4
    assert first.usage['prompt_tokens'] > 0
    assert second.usage == {'prompt_tokens': 0, 'completion_tokens': 0}


def test_scripted_client__rejects_unknown_items():
    # Setup
    client = ScriptedClient([42])

    # Run and Assert
    with pytest.raises(TypeError, match=re.escape('Got int instead.')):
        client.complete_json(MESSAGES, SCHEMA)


def test_scripted_client__describe_and_pickle():
    # Setup
    client = ScriptedClient([{'a': 1}, {'a': 2}])
    client.complete_json(MESSAGES, SCHEMA)

    # Run
    restored = pickle.loads(pickle.dumps(client))

    # Assert
    assert client.describe() == "scripted test client (model 'scripted', 1 requests so far)"
    assert restored.complete_json(MESSAGES, SCHEMA).data == {'a': 2}
