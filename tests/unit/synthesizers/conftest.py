"""Fixtures of the synthesizer tests: a small shop table and its SDV metadata."""

import pytest
from synth_fixtures import make_shop_data, make_shop_metadata


@pytest.fixture
def shop_data():
    """300 rows of the shop table."""
    return make_shop_data()


@pytest.fixture
def shop_metadata(shop_data):
    """Metadata of the shop table."""
    return make_shop_metadata(shop_data)


@pytest.fixture(scope='module')
def fitted_shop():
    """A synthesizer fitted once per module on the shop table (statistical planner), its data
    and metadata. Tests that sample from it call ``reset_sampling`` first when they need the
    first sample after fit."""
    from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer

    data = make_shop_data()
    metadata = make_shop_metadata(data)
    synthesizer = LLMSynthorSynthesizer(metadata, planner='statistical', verbose=False)
    synthesizer.fit({'shop': data})
    return synthesizer, data, metadata
