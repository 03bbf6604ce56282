"""Zones in shards: independent of the sharding's execution, resumable, on a real LocalCluster."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.geo import synthesize_population
from sdv_llmsynthor.geo.shards import synthesize_population_sharded
from sdv_llmsynthor.spec.populationsim import load_populationsim
from tests.unit.geo.popsim_example import TRUTH, write_example


@pytest.fixture
def project(tmp_path):
    configs, data = write_example(tmp_path / 'config')
    return load_populationsim(configs, data)


def _run(project, output_dir, **kwargs):
    return synthesize_population_sharded(
        project.spec, project.metadata, project.households, project.persons,
        output_dir=output_dir, weight_column='WGTP', **kwargs)


def test_sharded__one_shard_equals_the_in_process_engine(project, tmp_path):
    """With the top level as shard level, the parts hold exactly synthesize_population's rows."""
    # Run
    sharded = _run(project, tmp_path / 'out', shard_level='REGION')
    direct = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP')

    # Assert
    households = sharded.read('households')
    pd.testing.assert_frame_equal(households, direct.tables['households'],
                                  check_dtype=False)
    assert len(sharded.read('persons')) == len(direct.tables['persons'])
    pd.testing.assert_frame_equal(sharded.report, direct.report)


def test_sharded__quotas_keep_upper_controls_and_keys_are_global(project, tmp_path):
    """Shards per PUMA: totals exact, ids unique and contiguous, persons keyed to them."""
    # Run
    result = _run(project, tmp_path / 'out', shard_level='PUMA', max_households_per_shard=1)

    # Assert
    households = result.read('households')
    persons = result.read('persons')
    assert len(result.manifest['shards']) == 2
    assert sorted(households['hh_id']) == list(range(1, len(households) + 1))
    assert set(persons['hh_id']) <= set(households['hh_id'])
    assert households.groupby('TAZ').size().to_dict() == {
        str(taz): sum(c.values()) for taz, c in TRUTH.items()}
    region = result.report[(result.report['statistic'] == 'seniors')]
    assert region['difference'].abs().max() == 0
    assert (tmp_path / 'out' / '_manifest.json').exists()


def test_sharded__rerun_skips_complete_parts(project, tmp_path):
    """A second run with the same inputs reuses every part and writes the same rows."""
    # Setup
    first = _run(project, tmp_path / 'out', shard_level='PUMA', max_households_per_shard=1)
    before = first.read('households')
    part = tmp_path / 'out' / 'households' / 'part-000001.parquet'
    stamp = os.stat(part).st_mtime_ns

    # Run
    second = _run(project, tmp_path / 'out', shard_level='PUMA', max_households_per_shard=1)

    # Assert
    assert all(shard['skipped'] for shard in second.manifest['shards'])
    assert os.stat(part).st_mtime_ns == stamp
    pd.testing.assert_frame_equal(second.read('households'), before)
    pd.testing.assert_frame_equal(second.report, first.report)


def test_sharded__a_changed_spec_does_not_reuse_parts(project, tmp_path):
    """Parts from another spec are rewritten, not mixed in."""
    # Setup
    _run(project, tmp_path / 'out', shard_level='PUMA', max_households_per_shard=1)
    project.spec.tables['persons'].statistics[0].weight = 0.5

    # Run
    second = _run(project, tmp_path / 'out', shard_level='PUMA', max_households_per_shard=1)

    # Assert
    assert not any(shard['skipped'] for shard in second.manifest['shards'])
    assert len(second.read('households')) == sum(sum(c.values()) for c in TRUTH.values())


def test_sharded__unknown_shard_level(project, tmp_path):
    with pytest.raises(ValueError, match="Unknown shard level 'COUNTY'"):
        _run(project, tmp_path / 'out', shard_level='COUNTY')


def _dies_once(marker):
    """A worker plugin that kills its worker process on the first shard it runs."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class DieOnce(WorkerPlugin):
        def transition(self, key, start, finish, *args, **kwargs):
            if finish == 'executing' and str(key).startswith('shard-0-') \
                    and not os.path.exists(marker):
                with open(marker, 'w') as handle:
                    handle.write('died')
                os._exit(1)

    return DieOnce()


@pytest.mark.slow
def test_sharded__local_cluster_with_a_killed_worker(project, tmp_path):
    """Two real worker processes, one killed mid-run: same rows as in process, no duplicate."""
    from distributed import Client, LocalCluster

    # Setup
    reference = _run(project, tmp_path / 'reference', shard_level='PUMA',
                     max_households_per_shard=1)
    expected = reference.read('households')
    marker = str(tmp_path / 'died')

    # Run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit='1GiB') as cluster, \
            Client(cluster) as client:
        client.register_plugin(_dies_once(marker))
        result = _run(project, tmp_path / 'out', shard_level='PUMA',
                      max_households_per_shard=1, client=client)

    # Assert
    assert os.path.exists(marker)
    households = result.read('households')
    assert households['hh_id'].is_unique
    pd.testing.assert_frame_equal(households, expected)
    manifest = json.loads((tmp_path / 'out' / '_manifest.json').read_text())
    assert sum(shard['rows']['households'] for shard in manifest['shards']) == len(expected)
    assert np.array_equal(result.report['result'], reference.report['result'])


def test_cli_populationsim__shards_to_csv_and_parquet(tmp_path, capsys):
    """--shard-level writes the CSVs from the parts; --parquet keeps the parts only."""
    from sdv_llmsynthor.cli import main

    # Setup
    configs, data = write_example(tmp_path / 'config')

    # Run
    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'csv'), '--shard-level', 'PUMA'])
    code_parquet = main(['populationsim', '-c', str(configs), '-d', str(data),
                         '-o', str(tmp_path / 'pq'), '--parquet'])

    # Assert
    out = capsys.readouterr()
    assert code == 0 and code_parquet == 0, out.err
    households = pd.read_csv(tmp_path / 'csv' / 'synthetic_households.csv')
    assert len(households) == sum(sum(c.values()) for c in TRUTH.values())
    assert households['household_id'].is_unique
    persons = pd.read_csv(tmp_path / 'csv' / 'synthetic_persons.csv')
    assert set(persons['household_id']) <= set(households['household_id'])
    assert list((tmp_path / 'pq' / 'parquet' / 'households').glob('part-*.parquet'))
    assert not (tmp_path / 'pq' / 'synthetic_households.csv').exists()
