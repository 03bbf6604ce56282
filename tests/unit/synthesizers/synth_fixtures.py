"""Data builders of the synthesizer tests: a small shop table and its SDV metadata."""

import numpy as np
import pandas as pd
from sdv.metadata import Metadata


def make_shop_data(num_rows=300, seed=0):
    """A small single table with ids, integers, floats, categories, booleans and dates."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(['Female', 'Male'], num_rows)
    low = rng.integers(0, 50, num_rows)
    return pd.DataFrame({
        'order_id': np.arange(num_rows),
        'age': rng.integers(18, 80, num_rows),
        'gender': gender,
        'amount': (rng.gamma(2.0, 40.0, num_rows) * np.where(gender == 'Male', 1.5, 1.0)).round(2),
        'channel': rng.choice(['web', 'store', 'app'], num_rows, p=[0.5, 0.3, 0.2]),
        'member': rng.random(num_rows) < 0.3,
        'low': low,
        'high': low + rng.integers(1, 30, num_rows),
        'day': (pd.Timestamp('2024-01-01') + pd.to_timedelta(rng.integers(0, 200, num_rows),
                                                              unit='D')).strftime('%Y-%m-%d'),
    })


def make_shop_metadata(data):
    """Metadata detected from the data, with ``order_id`` as an id primary key."""
    metadata = Metadata.detect_from_dataframes({'shop': data})
    metadata.update_column('order_id', sdtype='id', table_name='shop')
    metadata.update_column('member', sdtype='boolean', table_name='shop')
    metadata.set_primary_key('order_id', table_name='shop')
    return metadata
