"""Unit tests of LLMSynthorSynthesizer (statistical planner: no LLM, fast)."""

import gc
import re
import warnings
import weakref

import numpy as np
import pandas as pd
import pytest
from sdv.cag import FixedCombinations, Inequality, Range
from sdv.errors import InvalidDataError, SamplingError, SynthesizerInputError
from sdv.metadata import Metadata
from synth_fixtures import make_shop_data, make_shop_metadata

from sdv_llmsynthor.errors import LibraryTopUpWarning, SpecValidationError
from sdv_llmsynthor.planners.base import Planner
from sdv_llmsynthor.planners.statistical import StatisticalPlanner
from sdv_llmsynthor.spec import MacroSpec
from sdv_llmsynthor.synthesizers import LLMSynthorSynthesizer
from sdv_llmsynthor.synthesizers._mixin import SAMPLE_LIBRARY_ITERATIONS


def _fitted(metadata, data, **kwargs):
    kwargs.setdefault('planner', 'statistical')
    kwargs.setdefault('verbose', False)
    synthesizer = LLMSynthorSynthesizer(metadata, **kwargs)
    synthesizer.fit({'shop': data})
    return synthesizer


class _CountingPlanner(Planner):
    """A statistical planner that counts its calls and pretends to be an LLM."""

    name = 'counting'
    uses_llm = True

    def __init__(self):
        self.inner = StatisticalPlanner()
        self.calls = 0

    def propose(self, anchors, state):
        self.calls += 1
        state.usage.record_call(prompt_tokens=10, completion_tokens=5)
        return self.inner.propose(anchors, state)


def test___init____stores_parameters_as_given(shop_metadata):
    """Every ``__init__`` argument is kept under its own name; nothing runs yet."""
    # Run
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical', seed=7,
                                        num_rows=123, verbose=False)

    # Assert
    parameters = synthesizer.get_parameters()
    assert parameters['planner'] == 'statistical'
    assert parameters['seed'] == 7
    assert parameters['num_rows'] == 123
    assert parameters['spec'] is None
    assert parameters['llm'] is None
    assert parameters['pool_factor'] == 1.2
    assert parameters['enforce_rounding'] is True
    assert set(parameters) == {
        'spec', 'llm', 'planner', 'num_rows', 'pool_factor', 'max_iterations', 'token_budget',
        'checkpoint_dir', 'cache_dir', 'seed', 'enforce_min_max_values', 'enforce_rounding',
        'locales', 'verbose',
    }
    assert synthesizer.get_info()['is_fit'] is False


def test_fit__derives_spec_and_drops_rows(shop_metadata):
    """fit(data) derives a spec from the rows and keeps no reference to them."""
    # Setup
    data = make_shop_data()
    reference = weakref.ref(data)
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical', verbose=False)

    # Run
    synthesizer.fit({'shop': data})
    del data
    gc.collect()

    # Assert
    assert reference() is None
    spec = synthesizer.get_spec()
    assert isinstance(spec, MacroSpec)
    names = [statistic.name for statistic in spec.tables['shop'].statistics]
    assert {'age', 'gender', 'amount', 'channel'} <= set(names)
    assert synthesizer.get_info()['is_fit'] is True
    assert len(synthesizer.get_library()) > 0


def test_fit__accepts_a_bare_dataframe(shop_data, shop_metadata):
    """A DataFrame is accepted as a convenience."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical', verbose=False,
                                        num_rows=50, max_iterations=2)

    # Run
    synthesizer.fit(shop_data)

    # Assert
    assert synthesizer.get_info()['is_fit'] is True


def test_sample__follows_the_metadata(fitted_shop):
    """sample returns {table: DataFrame} with the metadata's columns, dtypes and ranges."""
    # Setup
    synthesizer, shop_data, shop_metadata = fitted_shop

    # Run
    sampled = synthesizer.sample(num_rows=250)

    # Assert
    assert list(sampled) == ['shop']
    frame = sampled['shop']
    assert len(frame) == 250
    assert list(frame.columns) == list(shop_data.columns)
    shop_metadata.validate_data(sampled)
    assert frame['order_id'].tolist() == list(range(250))
    assert frame['age'].dtype == np.int64
    assert frame['age'].between(18, 79).all()
    assert frame['amount'].between(4.4, 400.49).all()
    assert (frame['amount'] == frame['amount'].round(2)).all()
    assert frame['member'].dtype == bool
    assert set(frame['gender']) <= {'Female', 'Male'}
    assert set(frame['channel']) <= {'web', 'store', 'app'}
    assert pd.to_datetime(frame['day'], format='%Y-%m-%d').notna().all()


def test_sample__aligns_marginals_with_the_targets(fitted_shop):
    """Categorical marginals of the sample match the spec's shares to the rounding limit."""
    # Setup
    synthesizer = fitted_shop[0]
    spec = synthesizer.get_spec()
    targets = spec.tables['shop'].get_statistic('channel').proportions()

    # Run
    frame = synthesizer.sample(num_rows=1000)['shop']

    # Assert
    shares = frame['channel'].value_counts(normalize=True)
    for (value,), share in targets.items():
        assert abs(shares.get(value, 0.0) - share) <= 0.002


def test_sample__large_draw_stops_once_the_pool_covers_the_request():
    """A large sample stops refining its pool as soon as calibration has every cell it needs,
    and a small one, whose multinomial draw misses cells, keeps refining."""
    # Setup
    from sdv_llmsynthor.evaluation.ecommerce_bn import sample_ecommerce

    data = sample_ecommerce(2000, seed=0)
    metadata = Metadata.load_from_dict({'tables': {'transactions': {'columns': {
        name: {'sdtype': 'numerical'} if name in ('user_age', 'price')
        else {'sdtype': 'categorical'} for name in data.columns}}}})
    synthesizer = LLMSynthorSynthesizer(metadata, planner='statistical', verbose=False)
    synthesizer.fit(data)
    targets = synthesizer.get_spec().tables['transactions'].get_statistic(
        'product_category').proportions()

    # Run
    small_stop = (synthesizer.sample(num_rows=500),
                  synthesizer.get_run_report('sample')['stopped_by'])[1]
    frame = synthesizer.sample(num_rows=50_000)['transactions']

    # Assert
    report = synthesizer.get_run_report('sample')
    assert report['stopped_by'] == 'covered'
    assert len(report['history']) < SAMPLE_LIBRARY_ITERATIONS
    assert small_stop != 'covered'
    shares = frame['product_category'].value_counts(normalize=True)
    for (value,), share in targets.items():
        assert abs(shares.get(value, 0.0) - share) <= 0.0005


def test_sample__without_fit_raises(shop_metadata):
    """Sampling an unfitted synthesizer raises SDV's SamplingError."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical')

    # Run and Assert
    with pytest.raises(SamplingError, match='has not been fitted'):
        synthesizer.sample(10)


def test_reset_sampling__repeats_the_first_sample(fitted_shop):
    """Consecutive samples differ; after reset_sampling the first one comes again."""
    # Setup
    synthesizer = fitted_shop[0]
    synthesizer.reset_sampling()

    # Run
    first = synthesizer.sample(100)['shop']
    second = synthesizer.sample(100)['shop']
    synthesizer.reset_sampling()
    again = synthesizer.sample(100)['shop']

    # Assert
    assert not first.equals(second)
    pd.testing.assert_frame_equal(first, again)


def test_fit__same_seed_same_samples(fitted_shop):
    """Two synthesizers with the same seed give the same samples."""
    # Setup
    synthesizer, shop_data, shop_metadata = fitted_shop
    synthesizer.reset_sampling()

    # Run
    first = synthesizer.sample(120)['shop']
    second = _fitted(shop_metadata, shop_data, seed=0).sample(120)['shop']

    # Assert
    pd.testing.assert_frame_equal(first, second)


def test_save_load__same_samples_and_no_api_key(shop_data, shop_metadata, tmp_path):
    """A saved synthesizer samples the same and never holds the API key."""
    # Setup
    from sdv_llmsynthor.llm import OpenAICompatibleClient

    client = OpenAICompatibleClient(model='fake-model', base_url='http://127.0.0.1:9/v1',
                                    api_key='sk-test-SECRET')
    synthesizer = _fitted(shop_metadata, shop_data, llm=client, num_rows=150)
    path = tmp_path / 'synthesizer.pkl'

    # Run
    synthesizer.save(path)
    loaded = LLMSynthorSynthesizer.load(path)
    original = synthesizer.sample(80)['shop']
    restored = loaded.sample(80)['shop']

    # Assert
    assert b'sk-test-SECRET' not in path.read_bytes()
    pd.testing.assert_frame_equal(original, restored)
    assert isinstance(loaded.get_parameters()['llm'], str)
    assert 'fake-model' in loaded.get_parameters()['llm']
    assert synthesizer.llm is client


def test_fit__from_spec_only(shop_data, shop_metadata):
    """fit() with a spec (dict or file) needs no rows."""
    # Setup
    spec = MacroSpec.from_data(shop_data, shop_metadata).to_dict()
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=spec, planner='statistical',
                                        num_rows=120, verbose=False)

    # Run
    synthesizer.fit()
    sampled = synthesizer.sample(120)

    # Assert
    shop_metadata.validate_data(sampled)
    assert synthesizer.get_run_report()['history'].shape[0] >= 1


def test_fit__without_spec_or_data_raises(shop_metadata):
    """fit() without data needs a spec."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical')

    # Run and Assert
    with pytest.raises(SynthesizerInputError, match=re.escape('fit() without data needs a spec')):
        synthesizer.fit()


def test_fit__missing_spec_file_raises(shop_metadata, tmp_path):
    """A spec path that does not exist is reported with its path."""
    # Setup
    path = tmp_path / 'nope.json'
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=str(path), planner='statistical')

    # Run and Assert
    with pytest.raises(SynthesizerInputError, match=re.escape(f"The spec file '{path}'")):
        synthesizer.fit()


def test_fit__invalid_spec_raises(shop_data, shop_metadata):
    """A spec naming an unknown column fails validation against the metadata."""
    # Setup
    spec = MacroSpec.from_data(shop_data, shop_metadata).to_dict()
    spec['tables']['shop']['statistics'][0]['columns'] = ['no_such_column']
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=spec, planner='statistical')

    # Run and Assert
    with pytest.raises(SpecValidationError, match='no_such_column'):
        synthesizer.fit()


def _without_range_values(metadata):
    """Hand-written SDV metadata: categorical columns without the detected range_values."""
    document = metadata.to_dict()
    for column in document['tables']['shop']['columns'].values():
        column.pop('range_values', None)
    return Metadata.load_from_dict(document)


def test_fit__spec_naming_a_category_the_data_lacks_raises(shop_data, shop_metadata):
    """fit(data) with a spec whose categories are not in the rows fails with their paths."""
    # Setup
    metadata = _without_range_values(shop_metadata)
    spec = MacroSpec.from_data(shop_data, metadata).to_dict()
    spec['tables']['shop']['columns']['channel']['categories'].append('kiosk')
    synthesizer = LLMSynthorSynthesizer(metadata, spec=spec, planner='statistical',
                                        verbose=False)

    # Run and Assert
    message = ("$.tables.shop.columns.channel.categories[3]: category 'kiosk' of 'channel' does "
               "not occur in the fit data (its 300 rows of 'shop' hold ['app', 'store', 'web']).")
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        synthesizer.fit({'shop': shop_data})


def test_fit__spec_naming_a_category_the_metadata_lacks_raises(shop_data, shop_metadata):
    """With detected metadata (range_values), the metadata itself rejects the category."""
    # Setup
    spec = MacroSpec.from_data(shop_data, shop_metadata).to_dict()
    spec['tables']['shop']['columns']['channel']['categories'].append('kiosk')
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=spec, planner='statistical',
                                        verbose=False)

    # Run and Assert
    message = ("$.tables.shop.columns.channel.categories[3]: category 'kiosk' is not in the "
               "metadata's range_values for 'channel'")
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        synthesizer.fit()


def test_fit__statistic_key_the_data_lacks_raises(shop_data, shop_metadata):
    """A statistic cell on a column without declared categories is checked against the rows."""
    # Setup
    metadata = _without_range_values(shop_metadata)
    spec = MacroSpec.from_data(shop_data, metadata).to_dict()
    del spec['tables']['shop']['columns']['channel']['categories']
    table = spec['tables']['shop']
    table['statistics'] = [item for item in table['statistics'] if len(item['columns']) == 1]
    statistic = next(index for index, item in enumerate(spec['tables']['shop']['statistics'])
                     if item['columns'] == ['channel'])
    spec['tables']['shop']['statistics'][statistic]['cells'][0]['key'] = ['kiosk']
    synthesizer = LLMSynthorSynthesizer(metadata, spec=spec, planner='statistical',
                                        verbose=False)

    # Run and Assert
    path = f'$.tables.shop.statistics[{statistic}].cells[0].key[0]'
    with pytest.raises(SpecValidationError, match=re.escape(f"{path}: category 'kiosk'")):
        synthesizer.fit({'shop': shop_data})


def test_fit__spec_with_decreasing_bins_raises_before_any_work(shop_data, shop_metadata):
    """Bin edges in decreasing order are rejected with their path, with or without data."""
    # Setup
    spec = MacroSpec.from_data(shop_data, shop_metadata).to_dict()
    edges = spec['tables']['shop']['columns']['amount']['bins']
    spec['tables']['shop']['columns']['amount']['bins'] = edges[::-1]
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=spec, planner='statistical',
                                        verbose=False)

    # Run and Assert
    message = '$.tables.shop.columns.amount.bins[1]: bins must be strictly increasing'
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        synthesizer.fit({'shop': shop_data})
    with pytest.raises(SpecValidationError, match=re.escape(message)):
        synthesizer.fit()


def test_fit__unknown_planner_raises(shop_data, shop_metadata):
    """An unknown planner name is rejected with the allowed values."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='magic')

    # Run and Assert
    message = "Invalid value 'magic' for parameter 'planner'"
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.fit(shop_data)


def test_add_constraints__inequality_and_range_are_honoured(shop_data, shop_metadata):
    """SDV constraints reject invalid records; the rejection table counts them."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical', verbose=False,
                                        num_rows=120)
    inequality = Inequality(low_column_name='low', high_column_name='high')
    bounded = Range(low_column_name='low', middle_column_name='high',
                    high_column_name='age')

    # Run
    synthesizer.add_constraints([inequality, bounded])
    synthesizer.fit({'shop': shop_data.assign(age=np.maximum(shop_data['age'],
                                                              shop_data['high'] + 1))})
    frame = synthesizer.sample(120)['shop']

    # Assert
    assert (frame['high'] >= frame['low']).all()
    assert ((frame['low'] < frame['high']) & (frame['high'] < frame['age'])).all()
    rejections = synthesizer.get_run_report()['rejections']
    rules = set(rejections['rule'])
    assert f'constraint {inequality!r}' in rules
    row = rejections[rejections['rule'] == f'constraint {inequality!r}'].iloc[0]
    assert row['rejected'] > 0
    assert len(synthesizer.get_constraints()) == 2
    assert synthesizer.get_metadata().to_dict() == shop_metadata.to_dict()


def test_add_constraints__fixed_combinations_from_data(shop_metadata):
    """FixedCombinations learned in fit(data) keeps only the real combinations."""
    # Setup
    data = make_shop_data()
    data['channel'] = np.where(data['gender'] == 'Male', 'web',
                               np.where(data['channel'] == 'web', 'store', data['channel']))
    metadata = make_shop_metadata(data)
    synthesizer = LLMSynthorSynthesizer(metadata, planner='statistical', verbose=False,
                                        num_rows=150)
    synthesizer.add_constraints([FixedCombinations(column_names=['gender', 'channel'])])

    # Run
    synthesizer.fit({'shop': data})
    frame = synthesizer.sample(200)['shop']

    # Assert
    real = set(map(tuple, data[['gender', 'channel']].drop_duplicates().to_numpy()))
    assert set(map(tuple, frame[['gender', 'channel']].to_numpy())) <= real


def test_sample__draws_from_the_library_without_planner_calls(shop_data, shop_metadata):
    """At the fit size the library suffices: the planner is not called by sample."""
    # Setup
    planner = _CountingPlanner()
    synthesizer = _fitted(shop_metadata, shop_data, planner=planner, num_rows=300)
    calls_after_fit = planner.calls
    usage_after_fit = synthesizer.get_usage()

    # Run
    with warnings.catch_warnings():
        warnings.simplefilter('error', LibraryTopUpWarning)
        synthesizer.sample(300)

    # Assert
    assert calls_after_fit > 0
    assert planner.calls == calls_after_fit
    assert synthesizer.get_usage()['llm_calls'] == usage_after_fit['llm_calls']


def test_sample__tops_up_cells_the_library_lacks(shop_data, shop_metadata):
    """Cells the library cannot produce at a larger size go to the planner, with a warning."""
    # Setup
    planner = _CountingPlanner()
    synthesizer = _fitted(shop_metadata, shop_data, planner=planner, num_rows=40)
    calls_after_fit = planner.calls

    # Run
    with pytest.warns(LibraryTopUpWarning, match=r'lacks \d+ cells the targets need at '
                                                 r'num_rows=1500; topping up with \d+ LLM calls'):
        frame = synthesizer.sample(1500)['shop']

    # Assert
    assert planner.calls > calls_after_fit
    assert len(frame) == 1500
    assert synthesizer.get_run_report('sample')['lacking_cells'] > 0


def test_sample__writes_the_output_folder(fitted_shop, tmp_path):
    """output_folder_path writes <table>.csv like SDV."""
    # Setup
    synthesizer = fitted_shop[0]

    # Run
    sampled = synthesizer.sample(50, output_folder_path=str(tmp_path / 'out'))

    # Assert
    written = pd.read_csv(tmp_path / 'out' / 'shop.csv')
    assert len(written) == 50
    assert written['order_id'].tolist() == sampled['shop']['order_id'].tolist()


def test_get_usage__and_run_report(shop_data, shop_metadata):
    """Usage and run report have the documented keys."""
    # Setup
    synthesizer = _fitted(shop_metadata, shop_data, num_rows=100)

    # Run
    usage = synthesizer.get_usage()
    report = synthesizer.get_run_report()

    # Assert
    assert usage == {'llm_calls': 0, 'prompt_tokens': 0, 'completion_tokens': 0,
                     'cached_calls': 0, 'discarded': {}, 'model': None}
    assert {'history', 'rejections', 'unmet', 'statistics', 'usage', 'stopped_by',
            'calibration', 'library_size'} <= set(report)
    assert list(report['rejections'].columns) == ['table', 'rule', 'checked', 'rejected',
                                                  'rate']
    assert synthesizer.get_run_report('sample') is None


def test_sample__rejects_bad_num_rows(fitted_shop):
    """num_rows must be a non-negative integer; 0 gives an empty table with the columns."""
    # Setup
    synthesizer, shop_data, _ = fitted_shop

    # Run
    empty = synthesizer.sample(0)['shop']

    # Assert
    assert list(empty.columns) == list(shop_data.columns)
    assert empty.empty
    with pytest.raises(SynthesizerInputError, match=re.escape("Invalid value '2.5'")):
        synthesizer.sample(2.5)
    with pytest.raises(SynthesizerInputError, match=re.escape("Invalid value '10'")):
        synthesizer.sample('10')


def test_sample_from_conditions__not_supported(fitted_shop):
    """Conditional sampling is refused with what to do instead."""
    # Setup
    synthesizer = fitted_shop[0]

    # Run and Assert
    with pytest.raises(SynthesizerInputError, match='express them as statistics'):
        synthesizer.sample_from_conditions([])


def test_fit__anchored_planner_accounts_llm_usage(shop_data, shop_metadata, tmp_path):
    """An LLM planner's calls, tokens and discards are accounted; the client is never saved."""
    # Setup
    from sdv_llmsynthor.llm.testing import ScriptedClient

    client = ScriptedClient(lambda messages, schema, params: 'not json', model='scripted-model')
    synthesizer = LLMSynthorSynthesizer(shop_metadata, llm=client, planner='anchored',
                                        num_rows=60, max_iterations=2, verbose=False)

    # Run
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        synthesizer.fit({'shop': shop_data})
    frame = synthesizer.sample(60)['shop']
    synthesizer.save(tmp_path / 'synth.pkl')

    # Assert
    usage = synthesizer.get_usage()
    assert usage['llm_calls'] >= 1
    assert usage['model'] == 'scripted-model'
    assert sum(usage['discarded'].values()) >= 1
    assert len(frame) == 60
    assert b'scripted-model' in (tmp_path / 'synth.pkl').read_bytes()
    loaded = LLMSynthorSynthesizer.load(tmp_path / 'synth.pkl')
    assert isinstance(loaded.llm, str)
    with pytest.raises(SynthesizerInputError, match=re.escape('Call set_llm(...) first')):
        loaded._get_planner()


def test_fit__token_budget_hands_over_to_the_statistical_planner(shop_data, shop_metadata):
    """Once the token budget is spent, no more LLM calls; the rows are still produced."""
    # Setup
    from sdv_llmsynthor.llm.testing import ScriptedClient

    client = ScriptedClient(lambda messages, schema, params: 'not json')
    synthesizer = LLMSynthorSynthesizer(shop_metadata, llm=client, planner='anchored',
                                        num_rows=120, token_budget=1, verbose=False)

    # Run
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        synthesizer.fit({'shop': shop_data})

    # Assert
    history = synthesizer.get_run_report()['history']
    assert history['llm_calls'].iloc[0] >= 1
    assert history['llm_calls'].iloc[-1] == history['llm_calls'].iloc[0]
    assert len(synthesizer.sample(120)['shop']) == 120


def test_sample__batch_size_and_max_tries_are_accepted_and_ignored(fitted_shop):
    """SDV's batch arguments are accepted; the sample is the same as without them."""
    # Setup
    synthesizer = fitted_shop[0]
    synthesizer.reset_sampling()
    plain = synthesizer.sample(num_rows=120)['shop']
    synthesizer.reset_sampling()

    # Run
    batched = synthesizer.sample(num_rows=120, batch_size=50, max_tries_per_batch=3)['shop']

    # Assert
    assert len(batched) == 120
    pd.testing.assert_frame_equal(plain, batched)


def test_save_load__parameters_metadata_and_info_round_trip(fitted_shop, tmp_path):
    """After save/load: same parameters, metadata, spec and fitted state."""
    # Setup
    synthesizer, _, shop_metadata = fitted_shop
    path = tmp_path / 'shop.pkl'

    # Run
    synthesizer.save(path)
    loaded = LLMSynthorSynthesizer.load(path)

    # Assert
    assert loaded.get_parameters() == synthesizer.get_parameters()
    assert loaded.get_metadata().to_dict() == shop_metadata.to_dict()
    assert loaded.get_spec().to_dict() == synthesizer.get_spec().to_dict()
    assert loaded.get_info()['is_fit'] is True
    assert loaded.get_info()['class_name'] == 'LLMSynthorSynthesizer'


def test_fit__extra_column_raises_like_sdv(shop_data, shop_metadata):
    """A column the metadata lacks is refused by SDV's own data validation, as in SDV."""
    # Setup
    synthesizer = LLMSynthorSynthesizer(shop_metadata, planner='statistical', verbose=False)
    data = shop_data.assign(extra=1)

    # Run and Assert
    message = "The columns ['extra'] are not present in the metadata."
    with pytest.raises(InvalidDataError, match=re.escape(message)):
        synthesizer.fit({'shop': data})
    with pytest.raises(InvalidDataError, match=re.escape(message)):
        synthesizer.fit(data)
    assert synthesizer.get_info()['is_fit'] is False


def test_fit__spec_mismatch_lists_every_problem_with_its_json_path(shop_data, shop_metadata):
    """Every mismatch between spec and metadata is reported at once, each with its JSON path."""
    # Setup
    spec = MacroSpec.from_data(shop_data, shop_metadata).to_dict()
    spec['tables']['shop']['statistics'][0]['columns'] = ['no_such_column']
    spec['tables']['elsewhere'] = spec['tables']['shop']
    synthesizer = LLMSynthorSynthesizer(shop_metadata, spec=spec, planner='statistical',
                                        verbose=False)

    # Run
    with pytest.raises(SpecValidationError) as error:
        synthesizer.fit()

    # Assert
    paths = [where for where, _ in error.value.problems]
    assert '$.tables.shop.statistics[0].columns[0]' in paths
    assert '$.tables.elsewhere' in paths
    message = ("$.tables.shop.statistics[0].columns[0]: unknown column 'no_such_column' in "
               "table 'shop'.")
    assert message in str(error.value)
    assert synthesizer.get_info()['is_fit'] is False
