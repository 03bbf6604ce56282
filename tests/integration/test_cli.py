"""The ``llmsynthor`` command on every subcommand, good and bad input (statistical planner)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata
from toy_tables import household_metadata

from sdv_llmsynthor.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A CSV, its metadata and a derived spec in a temporary folder."""
    folder = tmp_path_factory.mktemp('cli')
    rng = np.random.default_rng(0)
    num_rows = 300
    gender = rng.choice(['Female', 'Male'], num_rows)
    data = pd.DataFrame({
        'order_id': np.arange(num_rows),
        'age': rng.integers(18, 80, num_rows),
        'gender': gender,
        'spend': (rng.gamma(2.0, 40.0, num_rows) * np.where(gender == 'Male', 1.5, 1)).round(2),
        'channel': rng.choice(['web', 'store', 'app'], num_rows),
    })
    data.to_csv(folder / 'shop.csv', index=False)
    metadata = Metadata.detect_from_dataframes({'shop': data})
    metadata.update_column('order_id', sdtype='id', table_name='shop')
    metadata.set_primary_key('order_id', table_name='shop')
    metadata.save_to_json(str(folder / 'metadata.json'))
    code = main(['derive', str(folder / 'shop.csv'), '--metadata', str(folder / 'metadata.json'),
                 '-o', str(folder / 'spec.json'), '--joints', 'gender,spend'])
    assert code == 0
    return folder


def _write_bad_spec(workspace, tmp_path):
    """The workspace's spec with two problems (an unknown column, an unknown category)."""
    spec = json.loads((workspace / 'spec.json').read_text())
    spec['tables']['shop']['statistics'][0]['columns'] = ['agee']
    spec['tables']['shop']['statistics'][1]['cells'][0]['key'] = ['Robot']
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(spec))
    return path


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ''


def test_validate__valid_spec(workspace, capsys):
    """A valid spec exits 0 and says so on stdout."""
    # Run
    code = main(['validate', str(workspace / 'spec.json'), '--metadata',
                 str(workspace / 'metadata.json')])

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r'spec\.json: valid \(1 table\(s\), 5 statistics, 0 rules\)', out)


def test_validate__invalid_spec_lists_every_problem(workspace, tmp_path, capsys):
    """Every problem goes to stdout, one line; exit 2 with a one-line reason on stderr."""
    # Setup
    path = _write_bad_spec(workspace, tmp_path)

    # Run
    code = main(['validate', str(path), '--metadata', str(workspace / 'metadata.json')])

    # Assert
    captured = capsys.readouterr()
    assert code == 2
    assert 'agee' in captured.out
    assert 'Robot' in captured.out
    assert captured.err.strip().count('\n') == 0
    assert 'problem(s) listed above' in captured.err


def test_validate__missing_file(workspace, capsys):
    """A missing spec exits 2 naming the file."""
    # Run
    code = main(['validate', str(workspace / 'nope.json'), '--metadata',
                 str(workspace / 'metadata.json')])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f'llmsynthor: error: spec {workspace / "nope.json"}: no such file or ' \
                          'directory'


def test_derive__unknown_column_in_joints(workspace, tmp_path, capsys):
    """--joints with an unknown column exits 2 with the known columns."""
    # Run
    code = main(['derive', str(workspace / 'shop.csv'), '--metadata',
                 str(workspace / 'metadata.json'), '-o', str(tmp_path / 'x.json'),
                 '--joints', 'gender,zzz'])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown column 'zzz'" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'x.json').exists()


def test_derive__unknown_column_in_data(workspace, tmp_path, capsys):
    """A CSV with a column the metadata does not know exits 2."""
    # Setup
    data = pd.read_csv(workspace / 'shop.csv').assign(colour='red')
    data.to_csv(tmp_path / 'extra.csv', index=False)

    # Run
    code = main(['derive', str(tmp_path / 'extra.csv'), '--metadata',
                 str(workspace / 'metadata.json'), '-o', str(tmp_path / 'x.json')])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown column 'colour'" in err


def test_derive__folder_of_csvs_for_parent_child_tables(tmp_path, capsys):
    """derive reads one CSV per table for parent/child metadata."""
    # Setup
    households = pd.DataFrame({'hid': range(40), 'tenure': ['Owned', 'Rented'] * 20})
    persons = pd.DataFrame({'pid': range(100), 'hid': [i % 40 for i in range(100)],
                            'age': [20 + i % 50 for i in range(100)]})
    folder = tmp_path / 'data'
    folder.mkdir()
    households.to_csv(folder / 'households.csv', index=False)
    persons.to_csv(folder / 'persons.csv', index=False)
    metadata = household_metadata()
    metadata.save_to_json(str(tmp_path / 'metadata.json'))

    # Run
    code = main(['derive', str(folder), '--metadata', str(tmp_path / 'metadata.json'),
                 '-o', str(tmp_path / 'spec.json')])

    # Assert
    assert code == 0
    spec = json.loads((tmp_path / 'spec.json').read_text())
    assert set(spec['tables']) == {'households', 'persons'}
    assert spec['relationships'][0]['child_table'] == 'persons'
    assert 'wrote' in capsys.readouterr().out


def test_synthesize__single_table_with_report(workspace, tmp_path, capsys):
    """synthesize writes exactly -n rows and a fidelity report; results on stdout."""
    # Run
    code = main(['synthesize', '--metadata', str(workspace / 'metadata.json'), '--spec',
                 str(workspace / 'spec.json'), '--planner', 'statistical', '-n', '250',
                 '--seed', '1', '-o', str(tmp_path / 'out.csv'), '--report',
                 str(tmp_path / 'report'), '-q'])

    # Assert
    captured = capsys.readouterr()
    assert code == 0
    frame = pd.read_csv(tmp_path / 'out.csv')
    assert len(frame) == 250
    assert list(frame.columns) == ['order_id', 'age', 'gender', 'spend', 'channel']
    assert (tmp_path / 'report' / 'report.md').exists()
    assert (tmp_path / 'report' / 'statistics.csv').exists()
    assert list((tmp_path / 'report').glob('marginal_*.png'))
    assert (tmp_path / 'report' / 'joint_shop_gender_x_spend.png').exists()
    assert 'wrote' in captured.out
    assert 'mean TVD' in captured.out
    assert 'fitting on' in captured.err


def test_synthesize__resume_gives_the_same_output(workspace, tmp_path):
    """A run with --resume DIR checkpoints; a second run resumes to the same output."""
    # Setup
    arguments = ['synthesize', '--metadata', str(workspace / 'metadata.json'), '--spec',
                 str(workspace / 'spec.json'), '--planner', 'statistical', '-n', '120', '-q',
                 '--resume', str(tmp_path / 'ckpt')]

    # Run
    first = main(arguments + ['-o', str(tmp_path / 'a.csv')])
    second = main(arguments + ['-o', str(tmp_path / 'b.csv')])

    # Assert
    assert first == second == 0
    assert any((tmp_path / 'ckpt').iterdir())
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / 'a.csv'),
                                  pd.read_csv(tmp_path / 'b.csv'))


def test_synthesize__invalid_spec_reports_the_first_problem(workspace, tmp_path, capsys):
    """An invalid spec: the first problem and how many more, in one line, exit 2."""
    # Setup
    path = _write_bad_spec(workspace, tmp_path)

    # Run
    code = main(['synthesize', '--metadata', str(workspace / 'metadata.json'), '--spec',
                 str(path), '--planner', 'statistical', '-n', '10', '-o',
                 str(tmp_path / 'o.csv')])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f'llmsynthor: error: invalid spec {path}: $.tables.shop.statistics')
    assert re.search(r'\(\d+ more; run `llmsynthor validate`\)', err)
    assert 'Traceback' not in err


def test_synthesize__missing_metadata(workspace, tmp_path, capsys):
    """A missing metadata file exits 2 with one line."""
    # Run
    code = main(['synthesize', '--metadata', str(tmp_path / 'none.json'), '--spec',
                 str(workspace / 'spec.json'), '-n', '10', '-o', str(tmp_path / 'o.csv')])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (f'llmsynthor: error: metadata {tmp_path / "none.json"}: no such '
                           'file or directory')


def test_synthesize__bad_option_exits_2(capsys):
    """argparse errors exit 2 too (unknown planner)."""
    # Run
    code = main(['synthesize', '--metadata', 'm.json', '--spec', 's.json', '-o', 'o.csv',
                 '--planner', 'magic'])

    # Assert
    assert code == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err


def test_synthesize__parent_child_tables_to_a_folder(tmp_path, capsys):
    """The population example writes households.csv and persons.csv with valid keys."""
    # Run
    code = main(['synthesize', '--metadata', str(ROOT / 'metadata' / 'population.json'),
                 '--spec', str(ROOT / 'specs' / 'examples' / 'population.json'), '--planner',
                 'statistical', '-n', '40', '--max-iterations', '12', '-o',
                 str(tmp_path / 'population'), '-q'])

    # Assert
    assert code == 0
    households = pd.read_csv(tmp_path / 'population' / 'households.csv')
    persons = pd.read_csv(tmp_path / 'population' / 'persons.csv')
    assert len(households) == 40
    assert persons['household_id'].isin(households['household_id']).all()
    assert 'households: 40 rows' in capsys.readouterr().out


def test_report__with_real_data(workspace, tmp_path, capsys):
    """report prints per-statistic fidelity, adds SDMetrics with --real, writes -o."""
    # Setup
    main(['synthesize', '--metadata', str(workspace / 'metadata.json'), '--spec',
          str(workspace / 'spec.json'), '--planner', 'statistical', '-n', '200', '-q', '-o',
          str(tmp_path / 'syn.csv')])
    capsys.readouterr()

    # Run
    code = main(['report', str(tmp_path / 'syn.csv'), '--spec', str(workspace / 'spec.json'),
                 '--metadata', str(workspace / 'metadata.json'), '--real',
                 str(workspace / 'shop.csv'), '-o', str(tmp_path / 'rep')])

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert 'gender x spend' in out
    assert re.search(r'SDMetrics quality score 0\.\d{4}, diagnostic score', out)
    assert (tmp_path / 'rep' / 'report.md').exists()
    assert (tmp_path / 'rep' / 'sdmetrics_scores.csv').exists()
    assert list((tmp_path / 'rep').glob('quality_*.html'))


def test_report__unknown_column(workspace, tmp_path, capsys):
    """A synthetic CSV with a column the metadata does not know exits 2."""
    # Setup
    pd.read_csv(workspace / 'shop.csv').rename(columns={'spend': 'spent'}).to_csv(
        tmp_path / 'renamed.csv', index=False)

    # Run
    code = main(['report', str(tmp_path / 'renamed.csv'), '--spec',
                 str(workspace / 'spec.json'), '--metadata', str(workspace / 'metadata.json')])

    # Assert
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown column 'spent'" in err
    assert len(err.strip().splitlines()) == 1


def test_report__missing_output_file(workspace, tmp_path, capsys):
    """A missing synthetic file exits 2."""
    # Run
    code = main(['report', str(tmp_path / 'absent.csv'), '--spec', str(workspace / 'spec.json'),
                 '--metadata', str(workspace / 'metadata.json')])

    # Assert
    assert code == 2
    assert 'no such file or directory' in _last_line(capsys.readouterr().err)
