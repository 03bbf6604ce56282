"""PopulationSim configurations: import, synthesis of every zone, ActivitySim-style outputs."""

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.cli import main
from sdv_llmsynthor.errors import SpecValidationError
from sdv_llmsynthor.geo import synthesize_population
from sdv_llmsynthor.spec.model import MacroSpec
from sdv_llmsynthor.spec.populationsim import load_populationsim, write_populationsim_outputs
from sdv_llmsynthor.spec.validation import validate_spec
from tests.unit.geo.popsim_example import CONTROLS, CROSSWALK, TRUTH, seed_tables, write_example


@pytest.fixture
def project(tmp_path):
    configs, data = write_example(tmp_path)
    return load_populationsim(configs, data)


def test_load_populationsim__builds_a_valid_spec_1_1(project):
    """Geography, totals, merged controls and importance weights come from the files."""
    # Run
    spec = project.spec
    validate_spec(spec, project.metadata)

    # Assert
    assert spec.geography.levels == ['REGION', 'PUMA', 'TAZ']
    assert [row[-1] for row in spec.geography.rows] == [1, 2, 3, 4]  # TAZ 9 has no controls
    assert spec.geography.household_totals == {
        str(taz): sum(counts.values()) for taz, counts in TRUTH.items()}
    households = {s.name: s for s in spec.tables['households'].statistics}
    persons = {s.name: s for s in spec.tables['persons'].statistics}
    size = households['hh_size']
    assert size.level == 'TAZ' and size.columns == ('NP',) and size.complete
    assert [cell.key for cell in size.cells] == [((1, 2),), ((2, 3),), ((3, 4),), ((4, 6),)]
    assert spec.tables['households'].columns['NP'].bins == [1, 2, 3, 4, 6]
    assert persons['workers'].complete is False and persons['workers'].weight == 1.0
    assert households['rich_families'].columns == ('ctl__rich_families',)
    assert households['rich_families'].weight == pytest.approx(0.1)
    assert persons['seniors'].level == 'REGION'
    assert project.dropped == {
        'crosswalk TAZ zones without controls': 1,
        'seed households outside the seed zones or without weight': 2,
        'seed persons of dropped households': 3,
    }
    assert MacroSpec.from_populationsim(project.configs_dir,
                                        project.data_dir).to_dict() == spec.to_dict()


def test_synthesize_population__meets_every_control_of_a_feasible_configuration(project):
    """Household totals are exact; every control at every level is met."""
    # Run
    result = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column=project.weight_column)

    # Assert
    households = result.tables['households']
    persons = result.tables['persons']
    counts = households.groupby('TAZ').size().to_dict()
    assert counts == {str(taz): sum(c.values()) for taz, c in TRUTH.items()}
    assert households['hh_id'].tolist() == list(range(1, len(households) + 1))
    assert (households.set_index('hh_id')['NP'].sort_index()
            == persons.groupby('hh_id').size().sort_index()).all()
    own = result.report[~result.report['aggregated']]
    assert own['difference'].abs().max() == 0, own[own['difference'] != 0]
    summary = result.summary()
    assert set(summary['statistic']) == {'hh_size', 'workers', 'rich_families', 'seniors'}
    assert (summary['pct_rmse'].fillna(0) == 0).all()


def test_synthesize_population__is_deterministic_and_keeps_seed_zones(project):
    """The same seed gives the same households; without borrowing, households come from
    their PUMA's seeds."""
    # Run
    first = synthesize_population(project.spec, project.metadata, project.households,
                                  project.persons, weight_column='WGTP', seed=3, borrow=False)
    second = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP', seed=3, borrow=False)

    # Assert
    pd.testing.assert_frame_equal(first.tables['households'], second.tables['households'])
    households = first.tables['households']
    seed_puma = project.households.set_index('hh_id')['PUMA']
    assert (seed_puma.reindex(households['seed_household_id']).astype(str).to_numpy()
            == households['PUMA'].to_numpy()).all()
    assert first.borrowed == 0
    own = first.report[~first.report['aggregated']]
    assert own['difference'].abs().max() == 0


def test_synthesize_population__counts_borrowed_households(project):
    """Borrowing is reported: households whose seed lives in another seed zone."""
    # Run
    result = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP')

    # Assert
    households = result.tables['households']
    seed_puma = project.households.set_index('hh_id')['PUMA']
    other = (seed_puma.reindex(households['seed_household_id']).astype(str).to_numpy()
             != households['PUMA'].to_numpy())
    assert result.borrowed == int(other.sum())


def test_write_populationsim_outputs__activitysim_files(project, tmp_path):
    """synthetic_households/persons carry household_id, the seed id, zones, listed columns."""
    # Setup
    result = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP')

    # Run
    paths = write_populationsim_outputs(result, project, tmp_path / 'out')

    # Assert
    households = pd.read_csv(paths['households'])
    persons = pd.read_csv(paths['persons'])
    assert list(households.columns) == ['household_id', 'hh_id', 'REGION', 'PUMA', 'TAZ',
                                        'NP', 'WGTP', 'HINC']
    assert list(persons.columns) == ['household_id', 'REGION', 'PUMA', 'TAZ', 'per_num',
                                     'AGEP', 'WORK']
    assert households['household_id'].is_unique
    assert set(persons['household_id']) <= set(households['household_id'])
    summary = pd.read_csv(paths['summary_TAZ'])
    assert {'statistic', 'zone', 'cell', 'target', 'result', 'difference'} <= set(summary)


def test_cli_populationsim__runs_the_folder(tmp_path, capsys):
    """`llmsynthor populationsim -c -d -o` writes the population and prints the controls."""
    # Setup
    configs, data = write_example(tmp_path)

    # Run
    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'out')])

    # Assert
    out = capsys.readouterr()
    assert code == 0, out.err
    assert 'hh_size' in out.out and 'synthetic_households.csv' in out.out
    households = pd.read_csv(tmp_path / 'out' / 'synthetic_households.csv')
    assert len(households) == sum(sum(c.values()) for c in TRUTH.values())
    assert 'dropped 1 crosswalk TAZ zones without controls' in out.err


def test_cli_populationsim__error_scale_reaches_the_engine(tmp_path, capsys, monkeypatch):
    """`--error-scale level` is passed to the engine, and the feasible example is still met."""
    # Setup
    import sdv_llmsynthor.geo as geo

    configs, data = write_example(tmp_path)
    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs['error_scale'])
        return synthesize_population(*args, **kwargs)

    monkeypatch.setattr(geo, 'synthesize_population', recording)

    # Run
    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'out'), '--error-scale', 'level', '-q'])

    # Assert
    out = capsys.readouterr()
    assert code == 0, out.err
    assert seen == ['level']
    households = pd.read_csv(tmp_path / 'out' / 'synthetic_households.csv')
    assert len(households) == sum(sum(c.values()) for c in TRUTH.values())


def test_cli_populationsim__bad_expression_names_the_row(tmp_path, capsys):
    """An expression that cannot be translated exits 2 with the controls.csv row."""
    # Setup
    controls = CONTROLS.replace('persons.WORK == 1', 'persons.WORK.apply(len) == 1')
    configs, data = write_example(tmp_path, controls=controls)

    # Run
    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'out')])

    # Assert
    assert code == 2
    assert 'controls.csv[row 6].expression' in capsys.readouterr().err


def test_load_populationsim__unknown_geography(tmp_path):
    """A control at a geography the settings do not list names its row and field."""
    # Setup
    controls = CONTROLS.replace('seniors,REGION', 'seniors,COUNTY')
    configs, data = write_example(tmp_path, controls=controls)

    # Run and Assert
    with pytest.raises(SpecValidationError, match=r'controls.csv\[row 8\].geography'):
        load_populationsim(configs, data)


def test_synthesize_population__report_sums_controls_to_upper_levels(project):
    """Every control is also reported summed at each level above its own."""
    # Run
    result = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP')

    # Assert
    report = result.report
    size_region = report[(report['statistic'] == 'hh_size') & (report['level'] == 'REGION')]
    assert size_region['aggregated'].all()
    assert size_region['target'].sum() == sum(sum(c.values()) for c in TRUTH.values())
    assert np.allclose(size_region['result'], size_region['target'])


def test_synthesize_population__without_seeds_builds_the_library_from_the_spec(project):
    """No seed sample: records made from the region totals serve every zone."""
    # Run
    result = synthesize_population(project.spec, project.metadata, seed=1)

    # Assert
    households = result.tables['households']
    persons = result.tables['persons']
    assert households.groupby('TAZ').size().to_dict() == {
        str(taz): sum(c.values()) for taz, c in TRUTH.items()}
    assert (households.set_index('hh_id')['NP'].sort_index()
            == persons.groupby('hh_id').size().sort_index()).all()
    own = result.report[~result.report['aggregated']]
    hh_size = own[own['statistic'] == 'hh_size']
    assert hh_size['difference'].abs().max() == 0
    assert own['difference'].abs().sum() <= 0.05 * own['target'].sum()


def test_synthesize_population__rejects_an_unknown_error_scale(project):
    """A misspelt option is an error, not a silent default."""
    with pytest.raises(ValueError, match="error_scale must be one of 'rmse', 'relative'"):
        synthesize_population(project.spec, project.metadata, project.households,
                              project.persons, error_scale='percent')


def test_prepare_problem__error_scales_divide_by_a_power_of_the_level_zones(project):
    """rmse and level weigh a count as relative does, over sqrt(zones) and zones at its level."""
    from sdv_llmsynthor.geo.engine import prepare_problem

    # Run
    problems = {scale: prepare_problem(project.spec, project.metadata, project.households,
                                       project.persons, error_scale=scale)
                for scale in ('relative', 'rmse', 'level')}

    # Assert
    tree = problems['relative'].tree
    levels = {control.level for control in problems['relative'].controls}
    assert len({len(tree.zones[level]) for level in levels}) > 1  # the powers tell apart
    for position, control in enumerate(problems['relative'].controls):
        zones = len(tree.zones[control.level])
        np.testing.assert_allclose(problems['rmse'].controls[position].weights,
                                   control.weights / np.sqrt(zones))
        np.testing.assert_allclose(problems['level'].controls[position].weights,
                                   control.weights / zones)


def test_prepare_problem__borrowing_is_priced_in_lowest_level_counts(project):
    """borrow=2 prices a borrowed household at two counts of the cheapest lowest-level cell."""
    from sdv_llmsynthor.geo.engine import prepare_problem

    problem = prepare_problem(project.spec, project.metadata, project.households,
                              project.persons, weight_column='WGTP', borrow=2.0)
    default = prepare_problem(project.spec, project.metadata, project.households,
                              project.persons, weight_column='WGTP')

    lowest = np.concatenate([control.weights for control in problem.controls
                             if control.level == problem.tree.lowest])
    every = np.concatenate([control.weights for control in problem.controls])
    assert lowest[lowest > 0].min() > every[every > 0].min()  # the unit is not any level's
    assert problem.borrow_penalty == pytest.approx(2.0 * lowest[lowest > 0].min())
    assert default.borrow_penalty == pytest.approx(problem.borrow_penalty / 2)


def test_cli_populationsim__error_scale_choices_are_the_engines():
    """The CLI spells out the engine's choices (for a fast --help): they must stay alike."""
    from sdv_llmsynthor.cli import build_parser
    from sdv_llmsynthor.geo.engine import ERROR_SCALES

    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.choices
                      and 'populationsim' in action.choices)
    option = next(action for action in subparsers.choices['populationsim']._actions
                  if '--error-scale' in action.option_strings)
    assert tuple(option.choices) == ERROR_SCALES


def _with_zone_totals(project, totals):
    document = project.spec.to_dict()
    for table, items in totals.items():
        document['tables'][table]['zone_totals'] = items
    return MacroSpec.from_dict(document)


def _truth_sums():
    households, persons = seed_tables()
    hh = households.set_index('SERIALNO')
    persons_by_puma, income_by_taz = {}, {}
    for taz, counts in TRUTH.items():
        puma = str(next(p for t, p, _ in CROSSWALK if t == taz))
        for serial, count in counts.items():
            persons_by_puma[puma] = persons_by_puma.get(puma, 0) + count * int(
                hh.loc[serial, 'NP'])
            income_by_taz[str(taz)] = income_by_taz.get(str(taz), 0) + count * float(
                hh.loc[serial, 'HINC'])
    means = {taz: income_by_taz[taz] / sum(TRUTH[int(taz)].values()) for taz in income_by_taz}
    return persons_by_puma, means


def test_synthesize_population__meets_numeric_zone_totals(project):
    """Persons per PUMA (count) and mean income per TAZ (mean) are met with the counts."""
    # Setup
    persons_by_puma, mean_income = _truth_sums()
    spec = _with_zone_totals(project, {
        'persons': [{'name': 'persons', 'level': 'PUMA', 'function': 'count',
                     'zones': persons_by_puma}],
        'households': [{'name': 'mean_income', 'level': 'TAZ', 'function': 'mean',
                        'column': 'HINC', 'zones': mean_income}],
    })
    assert spec.to_dict()['tables']['households']['zone_totals'][0]['function'] == 'mean'

    # Run
    result = synthesize_population(spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP', borrow=False)

    # Assert
    households = result.tables['households']
    persons = result.tables['persons']
    assert persons.groupby('PUMA').size().to_dict() == persons_by_puma
    income = households.groupby('TAZ')['HINC'].mean()
    errors = np.asarray([abs(income[taz] / mean - 1) for taz, mean in mean_income.items()])
    # A TAZ holds 8-10 households: one household's income is a 5-15% step of the mean.
    # Without the control the means are 8-16% off.
    assert errors.mean() <= 0.02 and errors.max() <= 0.06, errors
    report = result.report[result.report['statistic'] == 'mean_income']
    assert set(report['cell']) == {'mean(HINC)'}


def test_synthesize_population__lower_bounds_prove_an_infeasible_zone(project):
    """A TAZ asking for more persons than its households can hold gets a positive bound."""
    # Setup: persons per TAZ of the known population, but 100 in TAZ 1 (9 households of at
    # most 5 persons: at least 55 short whatever is chosen).
    households, _ = seed_tables()
    size = households.set_index('SERIALNO')['NP']
    persons_by_taz = {str(taz): int(sum(count * size[serial] for serial, count in counts.items()))
                      for taz, counts in TRUTH.items()}
    persons_by_taz['1'] = 100
    spec = _with_zone_totals(project, {'persons': [
        {'name': 'persons', 'level': 'TAZ', 'function': 'count', 'zones': persons_by_taz}]})

    # Run
    result = synthesize_population(spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP', borrow=False,
                                   lower_bounds=True)

    # Assert
    bounds = result.bounds.set_index('zone')
    assert list(bounds.index) == ['1', '2', '3', '4']
    assert bounds.loc['1', 'lower_bound'] > 0
    assert (bounds.loc[['2', '3', '4'], 'lower_bound'] == 0).all()
    assert (bounds['lower_bound'] <= bounds['objective'] + 1e-9).all()
    report = result.report[(result.report['statistic'] == 'persons')
                           & (result.report['level'] == 'TAZ')].set_index('zone')
    assert report.loc['1', 'result'] <= 45
    assert 'bounds' in result.seconds


def test_cli_populationsim__lower_bounds_file(tmp_path, capsys):
    """--lower-bounds writes zone_bounds.csv (all zero on a feasible example) and says so."""
    configs, data = write_example(tmp_path)

    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'out'), '--lower-bounds', '-q'])

    out = capsys.readouterr()
    assert code == 0, out.err
    bounds = pd.read_csv(tmp_path / 'out' / 'zone_bounds.csv')
    assert len(bounds) == len(TRUTH) and (bounds['lower_bound'] == 0).all()
    assert '0 of 4 lowest zones cannot meet their own controls' in out.out


def test_cli_populationsim__lower_bounds_with_shards_is_an_error(tmp_path, capsys):
    """The bounds are computed in this process: combined with --workers, a clear exit 2."""
    configs, data = write_example(tmp_path)

    code = main(['populationsim', '-c', str(configs), '-d', str(data),
                 '-o', str(tmp_path / 'out'), '--lower-bounds', '--workers', '1', '-q'])

    assert code == 2
    assert '--lower-bounds runs in this process only' in capsys.readouterr().err


def test_validate__numeric_zone_totals_problems(project):
    """A mean of persons, unknown zones and a missing geography are named with their paths."""
    # Setup
    persons_by_puma, _ = _truth_sums()
    spec = _with_zone_totals(project, {'persons': [
        {'name': 'mean_age', 'level': 'PUMA', 'function': 'mean', 'column': 'AGEP',
         'zones': {**persons_by_puma, '77': 3}}]})

    # Run
    with pytest.raises(SpecValidationError) as error:
        validate_spec(spec, project.metadata)

    # Assert
    paths = [path for path, _ in error.value.problems]
    assert '$.tables.persons.zone_totals[0].function' in paths
    assert '$.tables.persons.zone_totals[0].zones["77"]' in paths


def test_synthesize_population__borrow_price(project):
    """A price of 0 borrows nothing; a negative price is an error."""
    # Run
    result = synthesize_population(project.spec, project.metadata, project.households,
                                   project.persons, weight_column='WGTP', borrow=0.0)

    # Assert
    assert result.borrowed == 0
    with pytest.raises(ValueError, match='borrow must be True, False or a price'):
        synthesize_population(project.spec, project.metadata, project.households,
                              project.persons, weight_column='WGTP', borrow=-1.0)
