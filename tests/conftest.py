"""Shared pytest configuration."""

import os

import pytest

# Keep BLAS/torch from fighting over the 2 cores with llama.cpp.
os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(autouse=True)
def _no_real_llm_environment(monkeypatch):
    """Tests never reach a real paid endpoint by accident: clear the LLM environment."""
    for name in ('LLMSYNTHOR_BASE_URL', 'LLMSYNTHOR_MODEL', 'LLMSYNTHOR_API_KEY', 'OPENAI_API_KEY',
                 'OPENAI_BASE_URL'):
        monkeypatch.delenv(name, raising=False)
