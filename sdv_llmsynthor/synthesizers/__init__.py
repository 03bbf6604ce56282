"""The SDV-facing synthesizers: single table, parent/child tables, and SYNTHIA.

They are registered with SDV through the ``sdv_modules`` entry points of the package, so that
``from sdv.single_table import LLMSynthorSynthesizer`` and
``from sdv.multi_table import LLMSynthorMultiTableSynthesizer`` work once it is installed.
"""

import importlib.util
import warnings

# Importing SDV runs its add-on loader, which imports this very module. When this module is
# imported first, that nested load sees it half-initialised and SDV warns that the add-ons
# failed; the classes are registered below instead, so that warning is silenced.
with warnings.catch_warnings():
    warnings.filterwarnings(
        'ignore', message=r'Failed to load "sdv\.(single|multi)_table:(LLMSynthor|Synthia)')
    import sdv  # noqa: F401

from sdv_llmsynthor.synthesizers.multi_table import LLMSynthorMultiTableSynthesizer  # noqa: E402
from sdv_llmsynthor.synthesizers.single_table import LLMSynthorSynthesizer  # noqa: E402

__all__ = ['LLMSynthorMultiTableSynthesizer', 'LLMSynthorSynthesizer']

if importlib.util.find_spec('sdv_llmsynthor.synthesizers.synthia') is not None:
    from sdv_llmsynthor.synthesizers.synthia import SynthiaSynthesizer  # noqa: E402, F401

    __all__.append('SynthiaSynthesizer')


def _register_with_sdv():
    """Expose the synthesizers under ``sdv.single_table`` / ``sdv.multi_table`` if missing."""
    import sdv.multi_table
    import sdv.single_table

    targets = {sdv.single_table: ['LLMSynthorSynthesizer', 'SynthiaSynthesizer'],
               sdv.multi_table: ['LLMSynthorMultiTableSynthesizer']}
    for module, names in targets.items():
        for name in names:
            if name in globals() and not hasattr(module, name):
                setattr(module, name, globals()[name])


_register_with_sdv()
