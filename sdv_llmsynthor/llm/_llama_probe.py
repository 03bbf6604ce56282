"""A health check of the llama.cpp build, run in a child process before the model is loaded.

Some llama.cpp builds crash the whole process on some CPUs (a segmentation fault in native
code, which Python cannot catch). The known case: builds compiled for a CPU with Intel AMX
repack the weights into llama.cpp's AMX buffer, and ``ggml_backend_amx_mul_mat`` then loads an
invalid tile configuration (``ldtilecfg`` on a 64-byte struct of which the compiler zeroed
only 32 bytes; llama.cpp PR #26954) at the first prompt of two tokens or more.
:class:`~sdv_llmsynthor.llm.local.LocalLlamaClient` runs this file once per process and model
(``python _llama_probe.py '<json>'``): a crash here costs a child process, not the user's.

This file imports nothing from sdv_llmsynthor, so it runs as a plain script.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import sys
import threading

#: What the probe asks for: a prompt of many tokens (evaluated as one batch, the path that
#: crashed) and a few tokens sampled under a JSON grammar.
PROBE_PROMPT = (
    'Write one row of a table of adults as JSON. Columns: age (integer from 18 to 90), '
    'workclass (Private, Self-emp, Government), hours per week (integer from 1 to 99). '
    'Example rows: 39,Private,40 and 50,Self-emp,13 and 28,Government,45.'
)
PROBE_SCHEMA = {
    'type': 'object',
    'properties': {'age': {'type': 'integer'}},
    'required': ['age'],
}

_OVERRIDE_LOCK = threading.Lock()


@contextlib.contextmanager
def model_params_override(llama_cpp, extra_buffers):
    """Within this block, ``llama_cpp.Llama`` loads models with ``use_extra_bufts=extra_buffers``.

    ``llama_cpp.Llama`` has no argument for llama.cpp's ``use_extra_bufts`` model parameter
    (the extra buffer types: AMX and the CPU weight repacking), so its default-parameters
    function is wrapped while a model loads. A backend without that parameter (an older
    llama-cpp-python, or a stand-in in tests) is left alone.

    Args:
        llama_cpp (module):
            The imported ``llama_cpp`` package.
        extra_buffers (bool or None):
            The value to load with. None keeps llama.cpp's default.
    """
    module = getattr(getattr(llama_cpp, 'llama', None), 'llama_cpp', None)
    original = getattr(module, 'llama_model_default_params', None)
    if extra_buffers is None or original is None:
        yield
        return

    def default_params():
        params = original()
        if hasattr(params, 'use_extra_bufts'):
            params.use_extra_bufts = bool(extra_buffers)
        return params

    with _OVERRIDE_LOCK:
        module.llama_model_default_params = default_params
        try:
            yield
        finally:
            module.llama_model_default_params = original


def run(model_path, n_threads=None, extra_buffers=None):
    """Load the model and complete one short grammar-constrained prompt.

    Args:
        model_path (str):
            The GGUF file.
        n_threads (int or None):
            CPU threads, as the client will use.
        extra_buffers (bool or None):
            ``use_extra_bufts`` as the client will load with (None: llama.cpp's default).

    Returns:
        str:
            The completion text.
    """
    import llama_cpp
    from llama_cpp.llama_grammar import LlamaGrammar

    with model_params_override(llama_cpp, extra_buffers):
        llama = llama_cpp.Llama(
            model_path=model_path, n_ctx=512, n_threads=n_threads, seed=0, verbose=False,
        )
    grammar = LlamaGrammar.from_json_schema(json.dumps(PROBE_SCHEMA), verbose=False)
    completion = llama.create_completion(
        PROBE_PROMPT, max_tokens=6, temperature=0.0, grammar=grammar,
    )
    return completion['choices'][0]['text']


def main(argv):
    """Run the probe with the JSON arguments in ``argv[1]``; print ``ok`` on success."""
    faulthandler.enable()
    arguments = json.loads(argv[1])
    run(arguments['model_path'], arguments.get('n_threads'), arguments.get('extra_buffers'))
    print('ok', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
