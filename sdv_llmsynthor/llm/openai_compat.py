"""A client for any OpenAI-compatible chat endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp).

Structured output degrades gracefully, per endpoint and model:

1. ``response_format={"type": "json_schema", "json_schema": {..., "strict": True}}``
   (OpenAI, Azure OpenAI, vLLM, Ollama);
2. ``response_format={"type": "json_object", "schema": S}`` (what llama.cpp's server accepts;
   the schema is also written in the system prompt for servers that ignore it);
3. plain text, the schema in the system prompt, and JSON extracted from the reply.

A mode is judged *unsupported* when the endpoint answers HTTP 400, 422 or 500 with a message
that mentions the structured-output request: ``response_format``, ``json_schema``,
``json_object``, ``structured output``, ``grammar``, ``guided`` or pydantic's
``Input should be`` (how llama.cpp's server rejects ``json_schema``). Any other 400/422 is a
real error, and any other 500 is retried as a transport error. The mode that worked is
remembered per ``(base_url, model)`` for the life of the process.

Secrets: the API key is kept only in memory. It is absent from ``repr()``, :meth:`describe`,
logs, exception messages (endpoint messages are scrubbed and the ``openai`` exception is not
chained), cache files and pickles (``__getstate__`` drops it: an unpickled client reads the key
from the environment again).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from sdv_llmsynthor.errors import (
    LLMBackendUnavailableError,
    LLMConfigurationError,
    LLMRequestError,
    LLMTransportError,
)
from sdv_llmsynthor.llm.base import LLMClient
from sdv_llmsynthor.llm.retry import RetryPolicy, parse_retry_after
from sdv_llmsynthor.llm.structured import (
    RawCompletion,
    schema_instruction,
    truncate,
    with_system_text,
)

LOGGER = logging.getLogger(__name__)

#: The model used with api.openai.com when neither ``model`` nor ``LLMSYNTHOR_MODEL`` is set.
DEFAULT_OPENAI_MODEL = 'gpt-4.1-nano'

#: Structured-output modes, from the strictest to the most permissive.
STRUCTURED_MODES = ('json_schema', 'json_object', 'text')

_UNSUPPORTED_STATUS = frozenset({400, 422, 500})
_UNSUPPORTED_PATTERN = re.compile(
    r'response_format|json_schema|json_object|structured.output|input should be|grammar|guided',
    re.IGNORECASE,
)
_BEARER = re.compile(r'(bearer\s+)[^\s\'",}]+', re.IGNORECASE)


def _is_retryable_status(status: int | None) -> bool:
    return status is not None and (status in (408, 409, 429) or status >= 500)


def _status_error_text(error: Any) -> str:
    """Return the message of an ``openai.APIStatusError`` followed by the response body."""
    message = str(getattr(error, 'message', '') or error)
    body = getattr(error, 'body', None)
    if body is not None:
        body_text = body if isinstance(body, str) else json.dumps(body, default=str)
        if body_text and body_text not in message:
            message = f'{message} - {body_text}'

    return message


def _redact_url(url: str | None) -> str:
    """Return ``url`` without user info, query or fragment (where credentials may hide)."""
    if not url:
        return ''

    parts = urlsplit(url)
    host = parts.hostname or ''
    if parts.port:
        host = f'{host}:{parts.port}'

    return urlunsplit((parts.scheme, host, parts.path.rstrip('/'), '', ''))


class _ModeUnsupportedError(Exception):
    """Internal: the endpoint rejected a structured-output mode."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class OpenAICompatibleClient(LLMClient):
    """Structured JSON completions from an OpenAI-compatible chat endpoint.

    Args:
        model (str or None):
            The model name. Defaults to ``LLMSYNTHOR_MODEL``, then (for api.openai.com only)
            ``'gpt-4.1-nano'``.
        base_url (str or None):
            The endpoint, e.g. ``'http://localhost:8000/v1'`` for vLLM or
            ``'http://localhost:11434/v1'`` for Ollama. Defaults to ``LLMSYNTHOR_BASE_URL``,
            then OpenAI.
        api_key (str or None):
            The key. Defaults to ``LLMSYNTHOR_API_KEY``, then ``OPENAI_API_KEY``; a local
            server (``base_url`` set) may have none. Never saved or shown.
        timeout (float):
            Seconds allowed for one HTTP request (connect, and each read, of a non-streamed
            response). Defaults to 60.
        max_retries (int):
            Retries of rate limits, timeouts, connection errors and 5xx. Defaults to 5.
        cache_dir (str or None):
            Folder of the on-disk response cache. ``None`` disables it.
        max_concurrency (int):
            Parallel requests in :meth:`map_complete_json`. Defaults to 4.
        cost_per_1k_prompt (float or None):
            Price of 1,000 prompt tokens, for ``usage.cost``.
        cost_per_1k_completion (float or None):
            Price of 1,000 completion tokens, for ``usage.cost``.
        retry_policy (RetryPolicy or None):
            Backoff settings (and the sleep function, for tests). Its ``max_retries`` is set
            from ``max_retries``.
        max_reasks (int):
            Re-asks after an invalid reply. Defaults to 1.
    """

    _mode_memory: ClassVar[dict[tuple[str, str], str]] = {}
    _mode_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 5,
        cache_dir: str | None = None,
        max_concurrency: int = 4,
        cost_per_1k_prompt: float | None = None,
        cost_per_1k_completion: float | None = None,
        retry_policy: RetryPolicy | None = None,
        max_reasks: int = 1,
    ) -> None:
        base_url = base_url or os.environ.get('LLMSYNTHOR_BASE_URL') or None
        model = model or os.environ.get('LLMSYNTHOR_MODEL') or None
        if model is None and base_url is None:
            model = DEFAULT_OPENAI_MODEL

        if not model:
            raise LLMConfigurationError(
                f'No model given for the endpoint {_redact_url(base_url)}: pass model=... or set '
                'the LLMSYNTHOR_MODEL environment variable.'
            )

        super().__init__(
            model=model,
            cache_dir=cache_dir,
            max_concurrency=max_concurrency,
            max_reasks=max_reasks,
            cost_per_1k_prompt=cost_per_1k_prompt,
            cost_per_1k_completion=cost_per_1k_completion,
        )
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_policy = retry_policy or RetryPolicy()
        self.retry_policy.max_retries = max_retries
        self._api_key = api_key
        self._client = None
        self._client_lock = threading.Lock()
        self._resolve_api_key()

    # -- secrets -------------------------------------------------------------------------------

    def _resolve_api_key(self) -> str:
        key = (
            self._api_key
            or os.environ.get('LLMSYNTHOR_API_KEY')
            or os.environ.get('OPENAI_API_KEY')
        )
        if key:
            return key

        if self.base_url is not None:
            # Local servers (llama.cpp, vLLM, Ollama) accept any key; the openai package wants one.
            return 'no-key'

        raise LLMConfigurationError(
            'No API key for OpenAI: pass api_key=... or set LLMSYNTHOR_API_KEY or OPENAI_API_KEY. '
            'For a local server (llama.cpp, vLLM, Ollama) set base_url=... or LLMSYNTHOR_BASE_URL.'
        )

    def _secrets(self) -> list[str]:
        secrets = [
            self._api_key,
            os.environ.get('LLMSYNTHOR_API_KEY'),
            os.environ.get('OPENAI_API_KEY'),
        ]
        if self.base_url:
            parts = urlsplit(self.base_url)
            secrets.extend([parts.password, parts.query])

        return sorted({secret for secret in secrets if secret and len(secret) >= 4}, key=len,
                      reverse=True)

    def _scrub(self, text: Any) -> str:
        """Remove every known secret (and any bearer token) from ``text``."""
        text = str(text)
        for secret in self._secrets():
            text = text.replace(secret, '***')

        return _BEARER.sub(r'\1***', text)

    # -- description ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """str: The base URL without credentials, or ``'https://api.openai.com/v1'``."""
        return _redact_url(self.base_url) or 'https://api.openai.com/v1'

    def _cache_endpoint(self) -> str:
        parts = urlsplit(self.endpoint)
        return f'{parts.netloc}{parts.path}'

    @property
    def structured_output_mode(self) -> str | None:
        """str or None: The mode known to work with this endpoint and model, if probed yet."""
        with self._mode_lock:
            return self._mode_memory.get((self.endpoint, self.model))

    @classmethod
    def forget_structured_output_modes(cls) -> None:
        """Forget which structured-output mode works with which endpoint (for tests)."""
        with cls._mode_lock:
            cls._mode_memory.clear()

    def _remember_mode(self, mode: str) -> None:
        with self._mode_lock:
            self._mode_memory[(self.endpoint, self.model)] = mode

    def describe(self) -> str:
        """Return a one-line description of the endpoint, the model and the mode in use.

        Returns:
            str:
                E.g. ``"OpenAI-compatible endpoint http://127.0.0.1:8080/v1, model 'smollm2',
                structured output: json_object"``.
        """
        mode = self.structured_output_mode or 'not probed yet'
        return (
            f'OpenAI-compatible endpoint {self.endpoint}, model {self.model!r}, '
            f'structured output: {mode}'
        )

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(model={self.model!r}, base_url={self.endpoint!r}, '
            "api_key='***')"
        )

    # -- pickling ------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_api_key'] = None
        state['_client'] = None
        state.pop('_client_lock', None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client_lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    import openai
                except ImportError as error:  # pragma: no cover - openai is a dependency
                    raise LLMBackendUnavailableError(
                        "The 'openai' package is required: pip install openai"
                    ) from error

                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=self._resolve_api_key(),
                    timeout=self.timeout,
                    max_retries=0,
                )

            return self._client

    def _send(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> RawCompletion:
        start = self.structured_output_mode or STRUCTURED_MODES[0]
        last_error = None
        for mode in STRUCTURED_MODES[STRUCTURED_MODES.index(start):]:
            try:
                raw = self._request(messages, schema, params, mode)
            except _ModeUnsupportedError as error:
                LOGGER.info(
                    '%s rejected structured output mode %r (HTTP %s: %s); falling back.',
                    self.endpoint, mode, error.status_code, truncate(str(error), 200),
                )
                last_error = error
                continue

            if self.structured_output_mode != mode:
                self._remember_mode(mode)

            return raw

        raise LLMRequestError(  # pragma: no cover - the text mode never raises the internal error
            f'{self.endpoint} rejected every structured output mode: {last_error}',
            status_code=getattr(last_error, 'status_code', None),
        )

    def _request(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        params: dict[str, Any],
        mode: str,
    ) -> RawCompletion:
        if mode == 'json_schema':
            request_messages = messages
            name = re.sub(r'[^A-Za-z0-9_-]', '_', str(schema.get('title') or 'response'))[:64]
            response_format = {
                'type': 'json_schema',
                'json_schema': {'name': name, 'schema': schema, 'strict': True},
            }
        else:
            # Servers that ignore the schema in json_object mode still read it in the prompt.
            request_messages = with_system_text(messages, schema_instruction(schema))
            response_format = (
                {'type': 'json_object', 'schema': schema} if mode == 'json_object' else None
            )

        kwargs = {'model': self.model, 'messages': request_messages, **params}
        if response_format is not None:
            kwargs['response_format'] = response_format

        client = self._get_client()
        completion = self._with_retries(lambda: client.chat.completions.create(**kwargs), mode)
        choices = getattr(completion, 'choices', None) or []
        usage = getattr(completion, 'usage', None)
        prompt_tokens = int(getattr(usage, 'prompt_tokens', 0) or 0)
        completion_tokens = int(getattr(usage, 'completion_tokens', 0) or 0)
        if not choices:
            return RawCompletion('', prompt_tokens, completion_tokens, mode=mode)

        choice = choices[0]
        message = getattr(choice, 'message', None)
        return RawCompletion(
            text=getattr(message, 'content', None) or '',
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            mode=mode,
            refusal=getattr(message, 'refusal', None),
            finish_reason=getattr(choice, 'finish_reason', None),
        )

    def _with_retries(self, call: Any, mode: str) -> Any:
        import openai

        policy = self.retry_policy
        attempt = 0
        while True:
            retry_after = None
            try:
                return call()
            except openai.APIStatusError as error:
                status = error.status_code
                message = truncate(self._scrub(_status_error_text(error)), 500)
                if (
                    mode != 'text'
                    and status in _UNSUPPORTED_STATUS
                    and _UNSUPPORTED_PATTERN.search(message)
                ):
                    raise _ModeUnsupportedError(message, status) from None

                if not _is_retryable_status(status):
                    raise LLMRequestError(
                        f'{self.endpoint} answered HTTP {status}: {message}', status_code=status
                    ) from None

                retry_after = parse_retry_after(getattr(error.response, 'headers', None))
            except openai.APITimeoutError:
                status = None
                message = f'no answer within {self.timeout} s'
            except openai.APIConnectionError as error:
                status = None
                cause = error.__cause__ or error
                message = truncate(self._scrub(f'connection error: {cause}'), 500)
            except openai.APIError as error:
                raise LLMRequestError(
                    f'{self.endpoint} failed: {truncate(self._scrub(error), 500)}'
                ) from None

            if attempt >= policy.max_retries:
                raise LLMTransportError(
                    f'{self.endpoint} failed after {attempt + 1} attempt(s): {message}',
                    status_code=status,
                    attempts=attempt + 1,
                ) from None

            delay = policy.backoff(attempt, retry_after)
            LOGGER.warning(
                '%s: %s; retry %d of %d in %.2f s.',
                self.endpoint, message, attempt + 1, policy.max_retries, delay,
            )
            self.usage.record_retry()
            policy.sleep(delay)
            attempt += 1
