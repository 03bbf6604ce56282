"""Small SDV metadata shared by the evaluation and CLI tests (importable from any test folder:
pytest puts ``tests/``, the folder of the top ``conftest.py``, on ``sys.path``)."""

from sdv.metadata import Metadata


def household_metadata():
    """Households (``hid``, ``tenure``) and their persons (``pid``, ``hid``, ``age``)."""
    return Metadata.load_from_dict({
        'tables': {
            'households': {'primary_key': 'hid', 'columns': {
                'hid': {'sdtype': 'id'}, 'tenure': {'sdtype': 'categorical'}}},
            'persons': {'primary_key': 'pid', 'columns': {
                'pid': {'sdtype': 'id'}, 'hid': {'sdtype': 'id'},
                'age': {'sdtype': 'numerical'}}},
        },
        'relationships': [{'parent_table_name': 'households', 'parent_primary_key': 'hid',
                           'child_table_name': 'persons', 'child_foreign_key': 'hid'}],
    })


def unrelated_tables_metadata():
    """Two one-column tables ``a`` (``x``) and ``b`` (``y``) with no relationship."""
    return Metadata.load_from_dict({'tables': {
        'a': {'columns': {'x': {'sdtype': 'categorical'}}},
        'b': {'columns': {'y': {'sdtype': 'categorical'}}},
    }})
