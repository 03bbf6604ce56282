"""Fixtures of the LLM client tests."""

import pytest
from llm_fakes import FakeOpenAIServer, RecordingSleep

from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient


@pytest.fixture
def fake_server():
    server = FakeOpenAIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_llm_environment(monkeypatch):
    """Isolate every test from the developer's LLM environment and from remembered modes."""
    for name in ('LLMSYNTHOR_BASE_URL', 'LLMSYNTHOR_MODEL', 'LLMSYNTHOR_API_KEY', 'OPENAI_API_KEY',
                 'OPENAI_BASE_URL'):
        monkeypatch.delenv(name, raising=False)

    OpenAICompatibleClient.forget_structured_output_modes()
    yield
    OpenAICompatibleClient.forget_structured_output_modes()


@pytest.fixture
def recording_sleep():
    return RecordingSleep()
