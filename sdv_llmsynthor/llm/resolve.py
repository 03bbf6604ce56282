"""Turn the ``llm=`` parameter of a synthesizer into an :class:`LLMClient`."""

from __future__ import annotations

import inspect
import os
from typing import Any

from sdv_llmsynthor.llm.base import LLMClient

_ENV_VARIABLES = ('LLMSYNTHOR_BASE_URL', 'LLMSYNTHOR_MODEL', 'OPENAI_API_KEY')


def _bad_value(llm: Any) -> ValueError:
    shown = llm if isinstance(llm, str) else type(llm).__name__
    return ValueError(
        "The 'llm' parameter must be an LLMClient, 'local', 'openai', 'openai:<model>' or a dict "
        "of OpenAICompatibleClient arguments such as {'base_url': ..., 'model': ..., "
        f"'api_key': ...}}. Got '{shown}' instead."
    )


def resolve_llm(llm: Any = None) -> LLMClient:
    """Return the LLM client described by ``llm``.

    Args:
        llm (LLMClient, str, dict or None):
            - an :class:`LLMClient`: returned as is;
            - ``'local'``: the embedded model (:class:`LocalLlamaClient`);
            - ``'openai'``: :class:`OpenAICompatibleClient` configured from the environment
              (``LLMSYNTHOR_BASE_URL``, ``LLMSYNTHOR_MODEL``, ``LLMSYNTHOR_API_KEY`` or
              ``OPENAI_API_KEY``);
            - ``'openai:<model>'``: the same with that model;
            - a dict: keyword arguments of :class:`OpenAICompatibleClient` (``base_url``,
              ``model``, ``api_key``, ``timeout``...);
            - ``None``: :class:`OpenAICompatibleClient` when ``LLMSYNTHOR_BASE_URL``,
              ``LLMSYNTHOR_MODEL`` or ``OPENAI_API_KEY`` is set, else :class:`LocalLlamaClient`.

    Returns:
        LLMClient:
            The client.

    Raises:
        ValueError:
            If ``llm`` is none of the above.
    """
    from sdv_llmsynthor.llm.local import LocalLlamaClient
    from sdv_llmsynthor.llm.openai_compat import OpenAICompatibleClient

    if isinstance(llm, LLMClient):
        return llm

    if llm is None:
        if any(os.environ.get(name) for name in _ENV_VARIABLES):
            return OpenAICompatibleClient()

        return LocalLlamaClient()

    if isinstance(llm, dict):
        accepted = set(inspect.signature(OpenAICompatibleClient.__init__).parameters) - {'self'}
        unknown = sorted(set(llm) - accepted)
        if unknown:
            raise ValueError(
                f"Unknown keys {unknown} in the 'llm' dict: OpenAICompatibleClient accepts "
                f'{sorted(accepted)}.'
            )

        return OpenAICompatibleClient(**llm)

    if isinstance(llm, str):
        text = llm.strip()
        if text == 'local':
            return LocalLlamaClient()

        if text == 'openai':
            return OpenAICompatibleClient()

        prefix, separator, model = text.partition(':')
        if prefix == 'openai' and separator and model.strip():
            return OpenAICompatibleClient(model=model.strip())

    raise _bad_value(llm)
