"""Zones in shards, in this process or on Dask, written to partitioned Parquet.

A shard is a run of consecutive zones of one *shard level* (e.g. PUMA) with all their lowest
zones. Controls above the shard level are split into integer quotas per shard-level zone
(:func:`~sdv_llmsynthor.geo.engine.quota_controls`) that add up to the upper targets exactly,
so shards are independent: each one runs Stage 1 and Stage 2 on its own zones and writes
``households/part-<shard>.parquet`` and ``persons/part-<shard>.parquet``.

Keys are global and known before any shard runs: household ids are the running sum of the
zone household totals, person ids are ``shard * 2**40 + row``. Every part is written to a
temporary file and renamed into place, with the run's fingerprint in its metadata, so a part
that exists is complete: a rerun (after a crash, Ctrl-C, or a killed worker) skips it, and a
shard that ran twice writes the same rows to the same file. The results do not depend on the
number of workers: every random draw is seeded by the zone.

On Dask (``dask.distributed``), the prepared problem (the encoded library and the targets) is
scattered to the workers once; a ``LocalCluster`` is started when neither a client nor a
scheduler address is given.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sdv_llmsynthor.geo.engine import (
    Problem,
    _expand,
    _output_tables,
    _report,
    borrowed_households,
    prepare_problem,
    quota_controls,
    solve_zones,
)

__all__ = ['ShardedResult', 'plan_shards', 'synthesize_population_sharded']

LOGGER = logging.getLogger(__name__)

_FINGERPRINT_KEY = b'sdv_llmsynthor.fingerprint'
PERSON_ID_STRIDE = 2 ** 40


@dataclass
class Shard:
    """Consecutive zones of the shard level, and where their households' ids start."""

    shard_id: int
    zones: list[int]  # positions at the shard level
    lowest: np.ndarray  # lowest-zone positions, in crosswalk order
    first_household_id: int


@dataclass
class ShardedResult:
    """What :func:`synthesize_population_sharded` returns.

    Args:
        output_dir (pathlib.Path): Where the parts and ``_manifest.json`` are.
        manifest (dict): Shards, rows, fingerprint, timings.
        report (pandas.DataFrame): As :attr:`PopulationResult.report`.
    """

    output_dir: Path
    manifest: dict
    report: pd.DataFrame
    seconds: dict = field(default_factory=dict)

    def read(self, table: str) -> pd.DataFrame:
        """Read one table's parts (in shard order) into memory."""
        parts = sorted((self.output_dir / table).glob('part-*.parquet'))
        return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)

    def summary(self) -> pd.DataFrame:
        """Per statistic and level: RMSE, %RMSE, share of cells met (see PopulationResult)."""
        from sdv_llmsynthor.geo.engine import PopulationResult

        return PopulationResult({}, self.report).summary()


def plan_shards(problem: Problem, level: str, max_households_per_shard: int) -> list[Shard]:
    """Pack consecutive zones of ``level`` into shards of at most that many households.

    A single zone larger than the limit is a shard of its own.
    """
    tree = problem.tree
    households_at = np.bincount(tree.ancestors[level], weights=problem.totals,
                                minlength=len(tree.zones[level])).astype(np.int64)
    shards, current, size = [], [], 0
    for zone in range(len(tree.zones[level])):
        if current and size + households_at[zone] > max_households_per_shard:
            shards.append(current)
            current, size = [], 0
        current.append(zone)
        size += int(households_at[zone])
    if current:
        shards.append(current)
    out, first = [], 1
    for shard_id, zones in enumerate(shards):
        lowest = np.flatnonzero(np.isin(tree.ancestors[level], zones))
        out.append(Shard(shard_id, zones, lowest, first))
        first += int(problem.totals[lowest].sum())
    return out


def _fingerprint(problem: Problem, level: str, shard: Shard) -> str:
    zones = [problem.tree.zones[level][z] for z in shard.zones]
    return json.dumps({'problem': problem.spec_hash, 'level': level, 'shard': shard.shard_id,
                       'zones': zones, 'first_household_id': shard.first_household_id})


def _part_paths(output_dir: Path, shard: Shard, tables: list[str]) -> dict[str, Path]:
    return {table: output_dir / table / f'part-{shard.shard_id:06d}.parquet' for table in tables}


def _existing(paths: dict[str, Path], fingerprint: str) -> bool:
    import pyarrow.parquet as pq

    for path in paths.values():
        if not path.exists():
            return False
        metadata = pq.read_schema(path).metadata or {}
        if metadata.get(_FINGERPRINT_KEY, b'').decode() != fingerprint:
            return False
    return True


def _write_part(frame: pd.DataFrame, path: Path, fingerprint: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _FINGERPRINT_KEY: fingerprint.encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f'{path.name}.tmp-{uuid.uuid4().hex}')
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def run_shard(problem: Problem, level: str, controls: list, shard: Shard,
              output_dir: str) -> dict:
    """Synthesise one shard and write its parts (skipped when they exist, complete).

    Returns:
        dict: the shard's id, rows per table, seconds, whether it was skipped, and the
        type counts per lowest zone (for the report).
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    library = problem.library
    tables = [library.parent] + ([library.child] if library.persons is not None else [])
    paths = _part_paths(output_dir, shard, tables)
    fingerprint = _fingerprint(problem, level, shard)
    done = output_dir / '_shards' / f'shard-{shard.shard_id:06d}.json'
    if done.exists() and _existing(paths, fingerprint):
        summary = json.loads(done.read_text())
        if summary.get('fingerprint') == fingerprint:
            summary.update(skipped=True, seconds=time.perf_counter() - started)
            return summary
    candidates, zone_counts = solve_zones(problem, controls, shard.lowest, level)
    summary = {'shard': shard.shard_id, 'fingerprint': fingerprint,
               'counts': {int(z): (candidates[z].tolist(), zone_counts[z].tolist())
                          for z in zone_counts}}
    chosen, zone_of = _expand(library, problem.tree, zone_counts, candidates,
                              problem.seed_zones)
    frames = _output_tables(library, problem.tree, chosen, zone_of)
    parent = frames[library.parent]
    if library.key is not None:
        ids = parent[library.key].to_numpy() + (shard.first_household_id - 1)
        parent[library.key] = ids
        if library.persons is not None:
            child = frames[library.child]
            child[library.foreign_key] = child[library.foreign_key].to_numpy() + (
                shard.first_household_id - 1)
            if library.child_key is not None and library.child_key in child.columns:
                child[library.child_key] = (shard.shard_id * PERSON_ID_STRIDE
                                            + np.arange(1, len(child) + 1, dtype=np.int64))
    for table, frame in frames.items():
        _write_part(frame, paths[table], fingerprint)
    summary['rows'] = {table: len(frame) for table, frame in frames.items()}
    # Written last: a shard whose record exists has all its parts.
    done.parent.mkdir(parents=True, exist_ok=True)
    temporary = done.with_name(f'{done.name}.tmp-{uuid.uuid4().hex}')
    temporary.write_text(json.dumps(summary))
    os.replace(temporary, done)
    summary.update(skipped=False, seconds=time.perf_counter() - started)
    return summary


def _default_level(problem: Problem, max_households_per_shard: int) -> str:
    """The highest level whose every zone fits in a shard (the lowest if none does)."""
    tree = problem.tree
    for level in tree.levels:
        households = np.bincount(tree.ancestors[level], weights=problem.totals)
        if households.max(initial=0) <= max_households_per_shard:
            return level
    return tree.lowest


def synthesize_population_sharded(
    spec: Any,
    metadata: Any,
    households: pd.DataFrame | None = None,
    persons: pd.DataFrame | None = None,
    output_dir: str | os.PathLike = 'population',
    weight_column: str | None = None,
    shard_level: str | None = None,
    max_households_per_shard: int = 200_000,
    client: Any = None,
    scheduler_address: str | None = None,
    n_workers: int | None = None,
    memory_limit: str = '4GiB',
    seed: int = 0,
    max_swaps_per_household: int = 20,
    error_scale: str = 'rmse',
    borrow: bool | float = True,
    sweeps: int = 3,
    verbose: bool = False,
) -> ShardedResult:
    """Synthesise every zone in shards and write partitioned Parquet.

    Args:
        spec, metadata, households, persons, weight_column, seed, max_swaps_per_household,
        error_scale, borrow, sweeps:
            As for :func:`~sdv_llmsynthor.geo.synthesize_population`.
        output_dir (str or PathLike):
            Folder of ``<table>/part-<shard>.parquet`` and ``_manifest.json``. Parts already
            there from the same run are kept (the run resumes).
        shard_level (str or None):
            The level whose zones are packed into shards. Defaults to the highest level whose
            every zone has at most ``max_households_per_shard`` households.
        max_households_per_shard (int):
            Shard size (bounds a worker's memory).
        client (distributed.Client or None):
            A Dask client to run the shards on.
        scheduler_address (str or None):
            Or a scheduler's address (``tcp://host:8786``): the same code on a cluster.
        n_workers (int or None):
            Neither given: ``None`` runs in this process; a number starts a ``LocalCluster``
            with that many single-threaded worker processes of ``memory_limit`` each.
        memory_limit (str):
            Per LocalCluster worker.
        verbose (bool):
            Show the shards' progress on stderr.

    Returns:
        ShardedResult
    """
    started = time.perf_counter()
    problem = prepare_problem(spec, metadata, households, persons, weight_column, seed,
                              max_swaps_per_household, error_scale, borrow=borrow,
                              sweeps=sweeps)
    level = shard_level or _default_level(problem, max_households_per_shard)
    if level not in problem.tree.levels:
        raise ValueError(f"Unknown shard level '{level}'; levels: "
                         f"{', '.join(problem.tree.levels)}.")
    controls = quota_controls(problem, level)
    shards = plan_shards(problem, level, max_households_per_shard)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    seconds = {'prepare': time.perf_counter() - started}

    started = time.perf_counter()
    own_cluster = None
    if client is None and scheduler_address is not None:
        from distributed import Client

        client = own_cluster = Client(scheduler_address)
    elif client is None and n_workers is not None:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1,
                               memory_limit=memory_limit, processes=True,
                               dashboard_address=None)
        client = own_cluster = Client(cluster)
    try:
        if client is None:
            iterator = shards
            if verbose:
                from tqdm.auto import tqdm

                iterator = tqdm(shards, desc='shards', unit='shard')
            summaries = [run_shard(problem, level, controls, shard, str(output_dir))
                         for shard in iterator]
        else:
            [shared] = client.scatter([problem], broadcast=True)
            [shared_controls] = client.scatter([controls], broadcast=True)
            futures = [client.submit(run_shard, shared, level, shared_controls, shard,
                                     str(output_dir), key=f'shard-{shard.shard_id}-'
                                     f'{problem.spec_hash}', retries=3, pure=False)
                       for shard in shards]
            if verbose:
                from distributed import progress

                progress(futures)
            summaries = client.gather(futures)
    finally:
        if own_cluster is not None:
            cluster = getattr(own_cluster, 'cluster', None)
            own_cluster.close()
            if cluster is not None:
                cluster.close()
    seconds['shards'] = time.perf_counter() - started

    candidates, zone_counts = {}, {}
    for summary in summaries:
        for z, (types, counts) in summary['counts'].items():
            candidates[int(z)] = np.asarray(types, dtype=np.int64)
            zone_counts[int(z)] = np.asarray(counts, dtype=np.int64)
    chosen, zone_of = _expand(problem.library, problem.tree, zone_counts, candidates,
                              problem.seed_zones)
    report = _report(problem.controls, problem.tree, problem.library, chosen, zone_of)
    manifest = {
        'borrowed_households': borrowed_households(problem, chosen, zone_of),
        'fingerprint': problem.spec_hash,
        'shard_level': level,
        'shards': [{'shard': s['shard'], 'skipped': s['skipped'], 'rows': s.get('rows'),
                    'seconds': round(s['seconds'], 3)} for s in summaries],
        'households': int(problem.totals.sum()),
        'seconds': {key: round(value, 3) for key, value in seconds.items()},
    }
    (output_dir / '_manifest.json').write_text(json.dumps(manifest, indent=1))
    return ShardedResult(output_dir, manifest, report, seconds)
