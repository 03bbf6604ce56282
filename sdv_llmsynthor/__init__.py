"""sdv-llmsynthor: macro-aligned micro-records for the SDV ecosystem."""

from sdv_llmsynthor.errors import LLMSynthorError, LLMSynthorWarning, SpecValidationError
from sdv_llmsynthor.spec import MacroSpec

__version__ = '0.1.0'

__all__ = [
    'LLMSynthorError',
    'LLMSynthorWarning',
    'MacroSpec',
    'SpecValidationError',
    '__version__',
]
