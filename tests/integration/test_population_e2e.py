"""The example population spec (households and persons) end to end, with reports.

``specs/examples/population.json`` + ``metadata/population.json``: households of 2-5 persons
with tenure, householder type and vehicles; persons with age, race, education, employment and
income; the paper's validity rules (appendix C.2). Once with the statistical planner, once with
the embedded model (marked ``llm``, small).
"""

import importlib.util
from pathlib import Path

import pytest
from sdv.metadata import Metadata

from sdv_llmsynthor.evaluation.fidelity import fidelity_report
from sdv_llmsynthor.synthesizers import LLMSynthorMultiTableSynthesizer

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / 'specs' / 'examples' / 'population.json'
METADATA = ROOT / 'metadata' / 'population.json'


def _check_population(data, metadata):
    metadata.validate_data(data)
    households = data['households']
    persons = data['persons']
    assert households['household_id'].is_unique
    assert persons['person_id'].is_unique
    assert persons['household_id'].isin(households['household_id']).all()
    sizes = persons.groupby('household_id').size().reindex(households['household_id'])
    assert (sizes.to_numpy() == households['num_persons'].to_numpy()).all()
    assert households['num_persons'].between(2, 5).all()
    adults = (persons.assign(adult=persons['age'] >= 18).groupby('household_id')['adult']
              .sum().reindex(households['household_id']).to_numpy())
    couples = (households['householder_type'] == 'Couple').to_numpy()
    assert (adults[couples] >= 2).all()
    young = persons['age'] < 18
    assert persons.loc[young, 'education'].isin(['Preschool', 'Elementary',
                                                 'High School']).all()
    assert (persons.loc[persons['age'] < 16, 'employment'] == 'Under 16').all()


def test_population__statistical_planner_end_to_end(tmp_path):
    """Fit on the spec, sample twice the size, check keys and rules, write the report."""
    # Setup
    metadata = Metadata.load_from_json(str(METADATA))
    synthesizer = LLMSynthorMultiTableSynthesizer(metadata, spec=str(SPEC), planner='statistical',
                                                  num_rows=150, verbose=False)

    # Run
    synthesizer.fit()
    data = synthesizer.sample(scale=2.0)
    report = fidelity_report(str(SPEC), data, metadata, run=synthesizer,
                             output_dir=tmp_path / 'report')

    # Assert
    assert len(data['households']) == 300
    _check_population(data, metadata)
    frame = report.to_frame()
    assert {'households', 'persons'} == set(frame['table'])
    assert 'child count' in set(frame['kind'])
    assert any(kind.startswith('cross-table') for kind in frame['kind'])
    assert frame.loc[frame['statistic'] == 'num_persons', 'tvd'].iloc[0] < 0.02
    assert report.rejections is not None and not report.rejections.empty
    assert 'couple adults' in set(report.rejections['rule'])
    assert (tmp_path / 'report' / 'report.md').exists()
    assert (tmp_path / 'report' / 'rejections.csv').exists()


@pytest.mark.llm
@pytest.mark.skipif(importlib.util.find_spec('llama_cpp') is None,
                    reason='llama-cpp-python is not installed')
def test_population__embedded_model_end_to_end():
    """The embedded model writes whole households; keys, rules and the rejection table hold."""
    # Setup
    metadata = Metadata.load_from_json(str(METADATA))
    synthesizer = LLMSynthorMultiTableSynthesizer(
        metadata, spec=str(SPEC), llm='local', planner='anchored', num_rows=12,
        max_iterations=6, token_budget=3000, verbose=False,
    )

    # Run
    synthesizer.fit()
    data = synthesizer.sample(scale=1.0)

    # Assert
    assert len(data['households']) == 12
    _check_population(data, metadata)
    usage = synthesizer.get_usage()
    assert usage['llm_calls'] >= 1
    rejections = synthesizer.get_run_report()['rejections']
    assert {'households', 'persons'} <= set(rejections['table'])
    assert 'persons_all_valid' in set(rejections['rule'])
