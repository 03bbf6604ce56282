"""The package's top-level names."""

import subprocess
import sys

import pytest

import sdv_llmsynthor


@pytest.mark.parametrize(
    'name', ['LLMSynthorSynthesizer', 'LLMSynthorMultiTableSynthesizer', 'SynthiaSynthesizer'])
def test_synthesizers__importable_from_the_package(name):
    """The synthesizers are importable from the package's top level."""
    # Run
    synthesizer_class = getattr(sdv_llmsynthor, name)

    # Assert
    from sdv_llmsynthor import synthesizers

    assert synthesizer_class is getattr(synthesizers, name)
    assert name in sdv_llmsynthor.__all__


def test_import__does_not_load_sdv():
    """Importing the package alone does not import SDV (which is slow to import)."""
    # Run
    result = subprocess.run(
        [sys.executable, '-c', 'import sys, sdv_llmsynthor; print("sdv" in sys.modules)'],
        capture_output=True, text=True, check=True)

    # Assert
    assert result.stdout.strip() == 'False'


def test_getattr__unknown_name_raises_attribute_error():
    """An unknown attribute raises AttributeError, as for any module."""
    # Run and Assert
    with pytest.raises(AttributeError, match='has no attribute'):
        sdv_llmsynthor.NoSuchSynthesizer  # noqa: B018
