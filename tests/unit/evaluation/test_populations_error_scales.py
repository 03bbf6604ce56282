import json

import pytest

from evaluation.populations_error_scales import COMPOSITION, _compare, _markdown, _reference_scores


def _held_out(value):
    return {key: value for key in COMPOSITION}


POPSIM = {'controls': {'age_18_64': 2.27, 'full_time': 0.2}, 'held_out': _held_out(0.08),
          'persons': 48213}
IPF = {'controls': {'age_18_64': 4.8, 'full_time': 3.5}, 'held_out': _held_out(0.09),
       'persons': 47085}


def test_compare__flags_only_controls_above_populationsim_beyond_the_tolerance():
    """2.28 against 2.27 is worse; 0.204 against 0.2 is within half a printed digit."""
    run = {'controls': {'age_18_64': 2.28, 'full_time': 0.204}}

    result = _compare(run, POPSIM)

    assert result['worse_than_populationsim'] == {'age_18_64': 2.28}
    assert result['max_pct_rmse'] == 2.28


def test_reference_scores__a_run_without_populationsim_is_a_clear_error(tmp_path):
    """Without PopulationSim's scores the script says which run to make first."""
    path = tmp_path / 'populations.json'
    path.write_text(json.dumps([{'name': 'psrc_20000', 'methods': {'ours': {}}}]))

    with pytest.raises(SystemExit, match='python -m evaluation.populations'):
        _reference_scores(path, 20000)


def test_markdown__medians_and_the_ipf_verdict_per_scale():
    """One row per run, then per scale how many runs meet every control and the medians."""
    runs = []
    for seed, (age, composition) in enumerate([(2.0, 0.085), (2.5, 0.095), (2.1, 0.086)]):
        run = {'scale': 'rmse', 'borrow_price': 1.0, 'seed': seed, 'seconds': 60.0,
               'persons': 48400, 'borrowed_households': 7000 + seed,
               'controls': {'age_18_64': age, 'full_time': 0.0},
               'held_out': _held_out(composition)}
        run.update(_compare(run, POPSIM))
        runs.append(run)

    text = _markdown(runs, IPF, POPSIM, 'python -m evaluation.populations_error_scales')

    assert 'age_18_64 2.50 (PopulationSim 2.27)' in text
    assert '| rmse | 1 | 2 of 3 | 0 | 7,001 | 0.0860 | 0.0860 | 0.0860 | yes |' in text
