"""Every error and warning class of sdv-llmsynthor."""


class LLMSynthorError(Exception):
    """Base class of every error raised by sdv-llmsynthor."""


class LLMSynthorWarning(UserWarning):
    """Base class of every warning issued by sdv-llmsynthor."""


class SpecValidationError(LLMSynthorError, ValueError):
    """A macro-statistics spec is invalid.

    Args:
        problems (list[tuple[str, str]]):
            One ``(json_path, message)`` pair per problem found. Every problem is collected
            before raising so the user can fix them all at once.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        lines = [f"  - {path}: {message}" for path, message in self.problems]
        super().__init__('The following errors were found in the spec:\n' + '\n'.join(lines))


class ExpressionError(LLMSynthorError, ValueError):
    """A rule or predicate expression does not parse, or uses something not allowed."""


class EvaluationError(LLMSynthorError, ValueError):
    """An evaluation metric or benchmark received inputs it cannot score (empty, mismatched)."""


class LLMError(LLMSynthorError):
    """Base class of the errors raised by the LLM clients in ``sdv_llmsynthor.llm``.

    No message of this family ever contains an API key or an authorization header.
    """


class LLMConfigurationError(LLMError, ValueError):
    """An LLM client is missing a setting it needs (a model name, an API key)."""


class LLMBackendUnavailableError(LLMError, ImportError):
    """The packages an LLM backend needs (e.g. ``llama_cpp`` for the embedded model) are missing."""


class LLMRequestError(LLMError):
    """The LLM endpoint rejected a request in a way that retrying cannot fix.

    Args:
        message (str):
            What went wrong, with any secret removed.
        status_code (int or None):
            The HTTP status code, when the endpoint answered.
    """

    def __init__(self, message, status_code=None):
        super().__init__(message)
        self.status_code = status_code


class LLMTransportError(LLMRequestError):
    """Rate limits, timeouts, connection errors or 5xx persisted after every retry.

    Args:
        message (str):
            What went wrong, with any secret removed.
        status_code (int or None):
            The HTTP status code of the last attempt, when the endpoint answered.
        attempts (int):
            How many requests were sent.
    """

    def __init__(self, message, status_code=None, attempts=0):
        super().__init__(message, status_code=status_code)
        self.attempts = attempts


class LLMOutputError(LLMError):
    """The LLM's reply is not usable (not JSON, or not valid against the schema) after a re-ask.

    Callers treat it as a discarded response and count it under ``discard_reason``.

    Args:
        message (str):
            What was wrong with the last reply.
        attempts (int):
            How many completions were requested (the first one plus the re-asks).
        last_text (str):
            The last raw reply, in full (so that its complete items can be salvaged).
        discard_reason (str):
            ``'invalid_json'``, ``'schema_violation'`` or ``'truncated_reply'``.
    """

    def __init__(self, message, attempts=0, last_text='', discard_reason='invalid_output'):
        super().__init__(message)
        self.attempts = attempts
        self.last_text = last_text
        self.discard_reason = discard_reason


class LLMRefusalError(LLMOutputError):
    """The LLM refused to answer (a refusal message, or a content filter stopped it).

    Args:
        message (str):
            What the endpoint said, truncated.
        attempts (int):
            How many completions were requested.
        last_text (str):
            The refusal text, truncated.
    """

    def __init__(self, message, attempts=0, last_text=''):
        super().__init__(message, attempts=attempts, last_text=last_text, discard_reason='refusal')


class CalibrationError(LLMSynthorError, ValueError):
    """A pool cannot be calibrated as asked (e.g. more units requested than the pool holds)."""


class SynthesisError(LLMSynthorError, ValueError):
    """The synthesis loop cannot run as configured (no table to synthesise, bad parameters)."""


class CheckpointMismatchError(LLMSynthorError, ValueError):
    """A checkpoint folder holds a run of another spec, seed, planner or settings.

    Args:
        message (str):
            Which fields differ and what to do.
        differences (dict[str, tuple]):
            Per field, ``(value in the checkpoint, value of this run)``.
    """

    def __init__(self, message, differences=None):
        super().__init__(message)
        self.differences = dict(differences or {})


class SynthesisWarning(LLMSynthorWarning):
    """The synthesis loop finished with fewer records or worse fit than asked."""


class LibraryTopUpWarning(LLMSynthorWarning):
    """``sample()`` needed cells the library learned in ``fit()`` lacks, and topped it up."""


class SynthiaWarning(LLMSynthorWarning):
    """SYNTHIA's fit loop ended in a state that will make sampling fail or degrade."""


class LLMTruncatedOutputError(LLMOutputError):
    """The reply was cut off at ``max_tokens`` before its JSON object was complete.

    No re-ask is sent (the same request would be cut again): callers may salvage the complete
    items of ``last_text`` (the full reply, never shortened) or retry with a smaller request.

    Args:
        message (str):
            What was wrong with the reply.
        attempts (int):
            How many completions were requested.
        last_text (str):
            The full raw reply.
        max_tokens (int or None):
            The completion-token limit the reply hit.
    """

    def __init__(self, message, attempts=0, last_text='', max_tokens=None):
        super().__init__(message, attempts=attempts, last_text=last_text,
                         discard_reason='truncated_reply')
        self.max_tokens = max_tokens

    def __repr__(self):
        head = self.last_text[:80] + ('...' if len(self.last_text) > 80 else '')
        return (f'{type(self).__name__}({str(self)[:200]!r}, attempts={self.attempts}, '
                f'max_tokens={self.max_tokens}, last_text={head!r} ({len(self.last_text)} chars))')
