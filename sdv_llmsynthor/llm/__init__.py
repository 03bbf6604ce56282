"""LLM clients: an OpenAI-compatible endpoint or the embedded llama.cpp model, one interface.

Every client returns schema-valid JSON objects from :meth:`LLMClient.complete_json`, with the
same structured-output checks, re-ask, on-disk cache and usage accounting.
"""

from sdv_llmsynthor.llm.base import LLMClient, LLMResponse
from sdv_llmsynthor.llm.cache import ResponseCache
from sdv_llmsynthor.llm.local import LocalLlamaClient
from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient
from sdv_llmsynthor.llm.resolve import resolve_llm
from sdv_llmsynthor.llm.retry import RetryPolicy
from sdv_llmsynthor.llm.usage import UsageTracker

__all__ = [
    'LLMClient',
    'LLMResponse',
    'LocalLlamaClient',
    'OpenAICompatibleClient',
    'ResponseCache',
    'RetryPolicy',
    'UsageTracker',
    'resolve_llm',
]
