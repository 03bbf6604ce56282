"""sdv-llmsynthor: macro-aligned micro-records for the SDV ecosystem."""

from sdv_llmsynthor.errors import LLMSynthorError, LLMSynthorWarning, SpecValidationError
from sdv_llmsynthor.spec import MacroSpec

__version__ = '0.1.0'

_SYNTHESIZERS = ('LLMSynthorMultiTableSynthesizer', 'LLMSynthorSynthesizer', 'SynthiaSynthesizer')

__all__ = [
    'LLMSynthorError',
    'LLMSynthorMultiTableSynthesizer',
    'LLMSynthorSynthesizer',
    'LLMSynthorWarning',
    'MacroSpec',
    'SpecValidationError',
    'SynthiaSynthesizer',
    '__version__',
]


def __getattr__(name):
    # The synthesizers import SDV (and through it torch), which takes seconds: load them on first
    # use, so that ``import sdv_llmsynthor`` stays cheap for spec validation and the CLI.
    if name in _SYNTHESIZERS:
        from sdv_llmsynthor import synthesizers

        return getattr(synthesizers, name)

    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
