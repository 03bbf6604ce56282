"""Run llama.cpp's OpenAI-compatible server with the settings the embedded model needs here.

``python -m sdv_llmsynthor.llm.serve_local --model FILE --port P ...`` takes the arguments of
``python -m llama_cpp.server`` and runs it, loading the model without llama.cpp's extra buffer
types when the build reports Intel AMX (its AMX kernel crashes the process on these CPUs; see
:mod:`sdv_llmsynthor.llm.local`).
"""

import runpy
import sys


def main():
    """Start ``llama_cpp.server`` with AMX buffers off where the build would use them."""
    import llama_cpp

    from sdv_llmsynthor.llm._llama_probe import model_params_override
    from sdv_llmsynthor.llm.local import _reports_amx

    extra_buffers = False if _reports_amx(llama_cpp) else None
    with model_params_override(llama_cpp, extra_buffers):
        sys.argv[0] = 'llama_cpp.server'
        runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()
