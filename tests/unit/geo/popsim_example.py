"""A small, feasible PopulationSim configuration written into a test's folder.

Three levels (REGION > PUMA > TAZ), two seed PUMAs with eight households each, and controls
computed from a known population drawn from those seeds, so every control can be met. A
third PUMA has a seed household but its TAZ has no controls: PopulationSim drops both.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

# Per seed household: (id, NP, WGTP, HINC, PUMA); persons per household: (AGEP, WORK).
SEEDS = [
    (1, 1, 20, 30000, 10), (2, 2, 30, 60000, 10), (3, 2, 10, 20000, 10), (4, 3, 25, 80000, 10),
    (5, 3, 15, 40000, 10), (6, 4, 10, 90000, 10), (7, 5, 5, 35000, 10), (8, 1, 0, 10000, 10),
    (11, 1, 25, 25000, 20), (12, 2, 20, 70000, 20), (13, 2, 20, 15000, 20),
    (14, 3, 10, 55000, 20), (15, 4, 15, 65000, 20), (16, 4, 5, 30000, 20),
    (17, 1, 10, 90000, 20), (18, 3, 10, 20000, 20),
    (99, 2, 10, 50000, 30),
]
AGES = [70, 40, 35, 68, 30, 8, 45, 44, 12, 50, 20, 75, 80, 5, 10, 36, 34]

# The known population: seed household id -> count, per TAZ.
TRUTH = {
    1: {1: 3, 2: 2, 4: 2, 6: 1, 7: 1},
    2: {2: 4, 3: 1, 5: 2, 1: 1},
    3: {11: 2, 12: 3, 14: 1, 15: 2},
    4: {13: 2, 16: 1, 17: 3, 18: 2},
}
CROSSWALK = [(1, 10, 1), (2, 10, 1), (3, 20, 1), (4, 20, 1), (9, 30, 1)]


def seed_tables():
    households = pd.DataFrame(SEEDS, columns=['SERIALNO', 'NP', 'WGTP', 'HINC', 'PUMA'])
    rows = []
    position = 0
    for serial, size, _, _, puma in SEEDS:
        for member in range(size):
            age = AGES[position % len(AGES)]
            position += 1
            work = int(18 <= age < 65 and (serial + member) % 3 != 0)
            rows.append((serial, member + 1, puma, age, work))
    persons = pd.DataFrame(rows, columns=['SERIALNO', 'SPORDER', 'PUMA', 'AGEP', 'WORK'])
    return households, persons


def truth_controls():
    """TAZ, PUMA and REGION control tables of the known population."""
    households, persons = seed_tables()
    hh = households.set_index('SERIALNO')
    taz_rows, puma_rows = [], {}
    workers_by_puma: dict[int, int] = {}
    rich_by_puma: dict[int, int] = {}
    seniors = 0
    for taz, counts in TRUTH.items():
        puma = next(p for t, p, _ in CROSSWALK if t == taz)
        sizes = {1: 0, 2: 0, 3: 0, 4: 0}
        for serial, count in counts.items():
            size = int(hh.loc[serial, 'NP'])
            sizes[min(size, 4)] += count
            members = persons[persons['SERIALNO'] == serial]
            workers_by_puma[puma] = workers_by_puma.get(puma, 0) + count * int(
                members['WORK'].sum())
            rich = int(size >= 2 and hh.loc[serial, 'HINC'] > 50000)
            rich_by_puma[puma] = rich_by_puma.get(puma, 0) + count * rich
            seniors += count * int((members['AGEP'] >= 65).sum())
        taz_rows.append({'TAZ': taz, 'HHBASE': sum(counts.values()),
                         'HHSIZE1': sizes[1], 'HHSIZE2': sizes[2], 'HHSIZE3': sizes[3],
                         'HHSIZE4': sizes[4]})
        puma_rows.setdefault(puma, {'PUMA': puma})
    puma_table = pd.DataFrame([{'PUMA': puma, 'WORKERS': workers_by_puma[puma],
                                'RICH': rich_by_puma[puma]} for puma in sorted(puma_rows)])
    region_table = pd.DataFrame([{'REGION': 1, 'SENIORS': seniors}])
    return pd.DataFrame(taz_rows), puma_table, region_table


CONTROLS = """\
target,geography,seed_table,importance,control_field,expression
num_hh,TAZ,households,1000000000,HHBASE,(households.WGTP > 0) & (households.WGTP < np.inf)
hh_size_1,TAZ,households,1000,HHSIZE1,households.NP == 1
hh_size_2,TAZ,households,1000,HHSIZE2,households.NP == 2
hh_size_3,TAZ,households,1000,HHSIZE3,households.NP == 3
hh_size_4_plus,TAZ,households,1000,HHSIZE4,households.NP >= 4
workers,PUMA,persons,1000,WORKERS,persons.WORK == 1
rich_families,PUMA,households,100,RICH,(households.NP >= 2) & (households.HINC > 50000)
seniors,REGION,persons,1000,SENIORS,persons.AGEP >= 65
"""

SETTINGS = """\
NO_INTEGERIZATION_EVER: False
geographies: [REGION, PUMA, TAZ]
seed_geography: PUMA
household_weight_col: WGTP
household_id_col: hh_id
total_hh_control: num_hh
max_expansion_factor: 5
input_table_list:
  - tablename: households
    filename : seed_households.csv
    index_col: hh_id
    rename_columns:
      SERIALNO: hh_id
  - tablename: persons
    filename : seed_persons.csv
    rename_columns:
      SERIALNO: hh_id
      SPORDER: per_num
  - tablename: geo_cross_walk
    filename : geo_cross_walk.csv
  - tablename: TAZ_control_data
    filename : taz_controls.csv
  - tablename: PUMA_control_data
    filename : puma_controls.csv
  - tablename: REGION_control_data
    filename : region_controls.csv
output_synthetic_population:
  household_id: household_id
  households:
    filename: synthetic_households.csv
    columns: [NP, WGTP, HINC]
  persons:
    filename: synthetic_persons.csv
    columns: [per_num, AGEP, WORK]
"""


def write_example(root: Path, controls: str = CONTROLS) -> tuple[Path, Path]:
    """Write the configuration under ``root``; return the configs and data folders."""
    configs, data = root / 'configs', root / 'data'
    configs.mkdir(parents=True)
    data.mkdir(parents=True)
    (configs / 'settings.yaml').write_text(SETTINGS)
    (configs / 'controls.csv').write_text(textwrap.dedent(controls))
    households, persons = seed_tables()
    (data / 'seed_households.csv').write_text(
        '# seed households; SERIALNO 99 lives in PUMA 30, which has no controls\n'
        + households.to_csv(index=False))
    persons.to_csv(data / 'seed_persons.csv', index=False)
    pd.DataFrame(CROSSWALK, columns=['TAZ', 'PUMA', 'REGION']).to_csv(
        data / 'geo_cross_walk.csv', index=False)
    taz, puma, region = truth_controls()
    taz.to_csv(data / 'taz_controls.csv', index=False)
    puma.to_csv(data / 'puma_controls.csv', index=False)
    region.to_csv(data / 'region_controls.csv', index=False)
    return configs, data
