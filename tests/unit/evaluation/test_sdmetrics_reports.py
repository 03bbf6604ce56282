"""Unit tests of the SDMetrics report helper (evaluation/sdmetrics_reports.py)."""

import re

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata
from toy_tables import household_metadata, unrelated_tables_metadata

from sdv_llmsynthor.evaluation.sdmetrics_reports import run_sdmetrics_reports


def _table(seed, num_rows=120):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'age': rng.integers(18, 80, num_rows),
        'gender': rng.choice(['F', 'M'], num_rows),
        'spend': rng.gamma(2.0, 30.0, num_rows).round(2),
    })


def test_run_sdmetrics_reports__single_table_saves_scores_and_figures(tmp_path):
    """Both reports run on one table; scores, details and HTML figures are written."""
    # Setup
    real = _table(0)
    metadata = Metadata.detect_from_dataframes({'shop': real})

    # Run
    result = run_sdmetrics_reports(real, _table(1), metadata, output_dir=tmp_path)

    # Assert
    assert 0 < result.quality_score <= 1
    assert 0.9 < result.diagnostic_score <= 1
    summary = result.summary()
    assert list(summary.columns) == ['report', 'property', 'score']
    assert {'Column Shapes', 'Data Validity', 'Overall'} <= set(summary['property'])
    names = {path.name for path in result.files}
    assert 'sdmetrics_scores.csv' in names
    assert 'quality_column_shapes.html' in names
    assert 'quality_column_shapes.csv' in names
    assert all(path.exists() for path in result.files)


def test_run_sdmetrics_reports__parent_child_tables():
    """Multi-table data get the cardinality property too; nothing is written without a folder."""
    # Setup
    households = pd.DataFrame({'hid': range(30), 'tenure': ['Owned', 'Rented', 'Owned'] * 10})
    persons = pd.DataFrame({'pid': range(75), 'hid': [i % 30 for i in range(75)],
                            'age': [18 + (7 * i) % 60 for i in range(75)]})
    metadata = household_metadata()
    data = {'households': households, 'persons': persons}

    # Run
    result = run_sdmetrics_reports(data, data, metadata)

    # Assert
    assert 'Cardinality' in set(result.summary()['property'])
    assert result.files == []


def test_run_sdmetrics_reports__dataframe_for_two_tables_raises():
    """One DataFrame cannot stand for several tables."""
    # Setup
    metadata = unrelated_tables_metadata()

    # Run and Assert
    message = "real_data is one DataFrame but the metadata has tables ['a', 'b']"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_sdmetrics_reports(pd.DataFrame({'x': ['1']}), pd.DataFrame({'x': ['1']}), metadata)
