import json
import math
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sdv.errors import SamplingError, SynthesizerInputError
from sdv.metadata import Metadata

from sdv_llmsynthor.llm.testing import ScriptedClient
from sdv_llmsynthor.synthesizers.synthia import SynthiaSynthesizer

COLORS = ['red', 'green', 'blue']


@pytest.fixture(autouse=True)
def _quiet_sdv_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        yield


def _real_table(num_rows=120, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        'age': rng.integers(18, 80, num_rows),
        'hours': rng.integers(1, 99, num_rows),
        'color': rng.choice(COLORS, num_rows, p=[0.5, 0.3, 0.2]),
        'label': rng.choice(['yes', 'no'], num_rows, p=[0.1, 0.9]),
    })


def _metadata(data, table_name='people'):
    return Metadata.detect_from_dataframes({table_name: data})


def _random_row(rng, age_offset=0):
    return {
        'age': int(rng.integers(18, 80)) + age_offset,
        'hours': int(rng.integers(1, 99)),
        'color': str(rng.choice(COLORS)),
        'label': str(rng.choice(['yes', 'no'])),
    }


def _is_generator_request(schema):
    return 'rows' in schema['properties']


def _responder(row_maker, decisions=None, feedback='Add more blue rows.'):
    """A scripted endpoint: rows from ``row_maker(seed, size)``, decisions in order."""
    decisions = list(decisions or [])

    def respond(messages, schema, params):
        if _is_generator_request(schema):
            size = schema['properties']['rows']['minItems']
            return {'rows': row_maker(params['seed'], size)}
        decision = decisions.pop(0) if decisions else 'Synthetic'
        return {'feedback': feedback, 'decision': decision}

    return respond


def _random_rows(seed, size):
    rng = np.random.default_rng(seed)
    return [_random_row(rng) for _ in range(size)]


def _fit(data=None, responses=None, **parameters):
    data = _real_table() if data is None else data
    client = ScriptedClient(responses or _responder(_random_rows))
    synthesizer = SynthiaSynthesizer(_metadata(data), llm=client, **parameters)
    synthesizer.fit(data)
    return synthesizer, client


def test_fit__stops_when_the_discriminator_says_real():
    # Run
    synthesizer, _ = _fit(
        responses=_responder(_random_rows, decisions=['Synthetic', 'Real']),
        max_rounds=5, patience=5, batch_size=5,
    )

    # Assert
    summary = synthesizer.get_fit_summary()
    history = synthesizer.get_history()
    assert summary['stop_reason'] == 'discriminator_real'
    assert summary['rounds'] == 2
    assert summary['final_round'] == 2
    assert [entry['decision'] for entry in history] == ['Synthetic', 'Real']


def test_fit__stops_after_patience_rounds_without_improvement():
    # Setup: the generator writes the same rows every round, so the score never improves.
    def same_rows(seed, size):
        return _random_rows(0, size)

    # Run
    synthesizer, _ = _fit(
        responses=_responder(same_rows), max_rounds=10, patience=2, batch_size=5,
    )

    # Assert
    summary = synthesizer.get_fit_summary()
    history = synthesizer.get_history()
    assert summary['stop_reason'] == 'no_improvement'
    assert summary['rounds'] == 3
    assert [entry['improved'] for entry in history] == [True, False, False]
    assert summary['final_round'] == 1


def test_fit__stops_at_max_rounds_while_improving():
    # Setup: ages start far too high and move toward the real range round after round.
    def improving_rows(seed, size):
        offset = {1: 60, 2: 25, 3: 0}[seed // 1000]
        rng = np.random.default_rng(seed)
        return [_random_row(rng, age_offset=offset) for _ in range(size)]

    # Run
    synthesizer, _ = _fit(
        responses=_responder(improving_rows), max_rounds=3, patience=1, batch_size=10,
        enforce_min_max_values=False,
    )

    # Assert
    summary = synthesizer.get_fit_summary()
    scores = [entry['score'] for entry in synthesizer.get_history()]
    assert summary['stop_reason'] == 'max_rounds'
    assert summary['rounds'] == 3
    assert scores[0] < scores[1] < scores[2]
    assert summary['final_round'] == 3


def test_fit__stops_at_the_token_budget():
    # Run
    synthesizer, _ = _fit(max_rounds=5, patience=5, batch_size=5, max_fit_tokens=1)

    # Assert
    assert synthesizer.get_fit_summary()['stop_reason'] == 'token_budget'
    assert synthesizer.get_fit_summary()['rounds'] == 1


def test_fit__feedback_goes_into_the_next_generator_prompt():
    # Run
    synthesizer, client = _fit(
        responses=_responder(_random_rows, feedback='Write more blue rows, fewer red ones.'),
        max_rounds=2, patience=5, batch_size=5, rows_per_round=5,
    )

    # Assert
    generator_prompts = [
        call['messages'][-1]['content'] for call in client.calls
        if _is_generator_request(call['schema'])
    ]
    assert 'Write more blue rows' not in generator_prompts[0]
    assert 'Write more blue rows, fewer red ones.' in generator_prompts[1]
    assert 'Statistical findings on your previous rows:' in generator_prompts[1]
    assert synthesizer.get_history()[1]['prompt_feedback'] == [
        'Write more blue rows, fewer red ones.'
    ]


def test_fit__without_diagnostics_the_prompt_carries_only_the_feedback():
    # Run
    _, client = _fit(
        max_rounds=2, patience=5, batch_size=5, rows_per_round=5,
        feedback_with_diagnostics=False,
    )

    # Assert
    last_prompt = [
        call['messages'][-1]['content'] for call in client.calls
        if _is_generator_request(call['schema'])
    ][-1]
    assert 'Add more blue rows.' in last_prompt
    assert 'Statistical findings' not in last_prompt


def test_fit__discriminator_reads_diagnostics_and_samples():
    # Run
    _, client = _fit(max_rounds=1, batch_size=5, discriminator_sample_rows=3)

    # Assert
    call = next(c for c in client.calls if not _is_generator_request(c['schema']))
    text = call['messages'][-1]['content']
    assert call['schema']['properties']['decision'] == {'enum': ['Real', 'Synthetic']}
    assert 'Guaranteed Real Data Sample:' in text
    assert 'Undetermined Data Sample:' in text
    assert 'KS' in text and 'chi-squared p' in text
    real_block = text.split('Guaranteed Real Data Sample:\n')[1].split('\n\n')[0]
    assert len(real_block.splitlines()) == 1 + 3


def test_fit__generator_schema_has_enums_and_number_types():
    # Run
    _, client = _fit(max_rounds=1, batch_size=4)

    # Assert
    schema = client.calls[0]['schema']['properties']['rows']
    row = schema['items']['properties']
    assert schema['minItems'] == schema['maxItems'] == 4
    assert row['age'] == {'type': 'integer'}
    assert sorted(row['color']['enum']) == sorted(COLORS)
    assert sorted(row['label']['enum']) == ['no', 'yes']
    assert 'minimum' not in row['age']


def test_fit__history_keeps_every_round_with_serializable_diagnostics():
    # Run
    synthesizer, _ = _fit(max_rounds=2, patience=5, batch_size=5)

    # Assert
    history = synthesizer.get_history()
    assert [entry['round'] for entry in history] == [1, 2]
    for entry in history:
        assert entry['num_generated'] == 10
        assert entry['feedback'] == 'Add more blue rows.'
        assert entry['tokens'] > 0
        assert 'Overall similarity score' in entry['summary']
        json.dumps(entry['diagnostics'])


def test_fit__conditioning_rows_are_stratified_on_the_target():
    # Setup
    data = _real_table(200)
    data['label'] = ['yes'] * 20 + ['no'] * 180

    # Run
    synthesizer, _ = _fit(
        data=data, max_rounds=1, batch_size=5, target_column='label', num_conditioning_rows=20,
    )

    # Assert
    prompt = synthesizer.get_generator_prompt()[-1]['content']
    examples = prompt.split('(do not copy them):\n')[1].split('\nFeedback')[0]
    labels = [line.split(',')[-1] for line in examples.splitlines()[1:21]]
    assert labels.count('yes') == 2
    assert 'Class balance of label: no 90%, yes 10%.' in prompt


def test_fit__accepts_a_dataframe_or_a_dict():
    # Setup
    data = _real_table()
    client = ScriptedClient(_responder(_random_rows))
    synthesizer = SynthiaSynthesizer(_metadata(data), llm=client, max_rounds=1, batch_size=5)

    # Run
    synthesizer.fit({'people': data})
    synthesizer.fit(data)

    # Assert
    assert synthesizer.get_fit_summary()['rounds'] == 1


def test_fit__invalid_parameters_raise():
    # Setup
    data = _real_table()
    synthesizer = SynthiaSynthesizer(
        _metadata(data), llm=ScriptedClient([]), batch_size=0, row_format='csv',
    )

    # Run and Assert
    message = (
        "The 'batch_size' parameter must be a positive integer. Got 0 instead.\n"
        "The 'row_format' parameter must be 'auto', 'object' or 'array'. Got 'csv' instead."
    )
    with pytest.raises(SynthesizerInputError, match=re.escape(message)):
        synthesizer.fit(data)


def test_sample__returns_exactly_num_rows_with_fitted_dtypes():
    # Setup
    synthesizer, _ = _fit(max_rounds=1, batch_size=5)

    # Run
    sampled = synthesizer.sample(7)

    # Assert
    table = sampled['people']
    assert list(sampled) == ['people']
    assert len(table) == 7
    assert list(table.columns) == ['age', 'hours', 'color', 'label']
    assert table['age'].dtype == np.int64
    assert set(table['color']) <= set(COLORS)


def test_sample__discards_and_counts_invalid_rows():
    # Setup: every batch holds 2 valid rows, 2 ages out of range and 1 hours out of range.
    def mixed_rows(seed, size):
        rng = np.random.default_rng(seed)
        rows = [_random_row(rng) for _ in range(size)]
        rows[0]['age'] = 200
        rows[1]['age'] = 3
        rows[2]['hours'] = 500
        return rows

    synthesizer, _ = _fit(responses=_responder(mixed_rows), max_rounds=1, batch_size=5)

    # Run
    table = synthesizer.sample(6)['people']

    # Assert
    report = synthesizer.get_sampling_report()
    assert len(table) == 6
    assert table['age'].between(18, 79).all()
    assert report['llm_batches'] == 3
    assert report['discarded'] == {'out_of_range': 9}
    assert report['invalid_details'] == {'out_of_range:age': 6, 'out_of_range:hours': 3}
    assert synthesizer.get_usage()['discarded']['out_of_range'] == 9


def test_sample__counts_failed_llm_calls():
    # Setup: the first sampling call and its re-ask get replies that are not JSON.
    generate = _responder(_random_rows)
    failures_left = [2]

    def respond(messages, schema, params):
        if _is_generator_request(schema) and params['seed'] >= 1_000_000 and failures_left[0]:
            failures_left[0] -= 1
            return 'not json'
        return generate(messages, schema, params)

    synthesizer, _ = _fit(responses=respond, max_rounds=1, batch_size=5)

    # Run
    table = synthesizer.sample(5)['people']

    # Assert
    report = synthesizer.get_sampling_report()
    assert len(table) == 5
    assert report['failed_batches'] == {'invalid_json': 1}
    assert synthesizer.get_usage()['discarded']['invalid_json'] == 1


def test_sample__excludes_copies_of_real_rows():
    # Setup: the generator copies real rows, then writes new ones.
    data = _real_table()
    copied = [
        {k: (v.item() if hasattr(v, 'item') else v) for k, v in row.items()}
        for row in data.head(5).to_dict('records')
    ]

    def copying_rows(seed, size):
        return copied[:size] if seed >= 1_000_000 and seed % 2 == 0 else _random_rows(seed, size)

    synthesizer, _ = _fit(data=data, responses=_responder(copying_rows), max_rounds=1,
                          batch_size=5)

    # Run
    table = synthesizer.sample(10)['people']

    # Assert
    report = synthesizer.get_sampling_report()
    assert len(table) == 10
    assert report['discarded'].get('exact_copy', 0) >= 5
    merged = table.merge(data.drop_duplicates(), how='inner')
    assert merged.empty


def test_sample__keeps_copies_when_the_check_is_off():
    # Setup
    data = _real_table()
    copied = [
        {k: (v.item() if hasattr(v, 'item') else v) for k, v in row.items()}
        for row in data.head(5).to_dict('records')
    ]
    synthesizer, _ = _fit(
        data=data, responses=_responder(lambda seed, size: copied[:size]), max_rounds=1,
        batch_size=5, exclude_near_copies=False,
    )

    # Run
    table = synthesizer.sample(5)['people']

    # Assert
    assert table.to_dict('records') == copied
    assert synthesizer.get_sampling_report()['discarded'] == {}


def test_sample__raises_when_too_few_rows_are_valid():
    # Setup
    def bad_rows(seed, size):
        rng = np.random.default_rng(seed)
        return [_random_row(rng, age_offset=500) for _ in range(size)]

    synthesizer, _ = _fit(responses=_responder(bad_rows), max_rounds=1, batch_size=5)

    # Run and Assert
    message = (
        'SYNTHIA produced only 0 of the 10 rows requested after 4 LLM calls (20 rows generated; '
        'discarded rows: out_of_range 20; failed calls: none).'
    )
    with pytest.raises(SamplingError, match=re.escape(message)):
        synthesizer.sample(10, max_tries_per_batch=2)


def test_sample__before_fit_raises():
    # Setup
    data = _real_table()
    synthesizer = SynthiaSynthesizer(_metadata(data), llm=ScriptedClient([]))

    # Run and Assert
    with pytest.raises(SamplingError, match=re.escape('This synthesizer has not been fitted.')):
        synthesizer.sample(5)


def test_sample__array_rows():
    # Setup
    def array_rows(seed, size):
        return [list(row.values()) for row in _random_rows(seed, size)]

    synthesizer, client = _fit(
        responses=_responder(array_rows), max_rounds=1, batch_size=5, row_format='array',
    )

    # Run
    table = synthesizer.sample(5)['people']

    # Assert
    items = client.calls[0]['schema']['properties']['rows']['items']
    assert items['prefixItems'][0] == {'type': 'integer'}
    assert items['items'] is False
    assert len(table) == 5
    assert set(table['label']) <= {'yes', 'no'}


def test_sample__id_and_datetime_columns():
    # Setup
    rng = np.random.default_rng(0)
    data = pd.DataFrame({
        'person_id': np.arange(60),
        'when': pd.date_range('2024-01-01', periods=60, freq='D').strftime('%Y-%m-%d'),
        'color': rng.choice(COLORS, 60),
    })
    metadata = Metadata.load_from_dict({'tables': {'events': {
        'primary_key': 'person_id',
        'columns': {
            'person_id': {'sdtype': 'id'},
            'when': {'sdtype': 'datetime', 'datetime_format': '%Y-%m-%d'},
            'color': {'sdtype': 'categorical'},
        },
    }}})

    def rows(seed, size):
        day_rng = np.random.default_rng(seed)
        return [
            {'when': f'2024-02-{int(day_rng.integers(1, 28)):02d}', 'color': 'red'}
            for _ in range(size)
        ]

    client = ScriptedClient(_responder(rows))
    synthesizer = SynthiaSynthesizer(metadata, llm=client, max_rounds=1, batch_size=4)
    synthesizer.fit(data)

    # Run
    table = synthesizer.sample(6)['events']

    # Assert
    assert 'person_id' not in client.calls[0]['schema']['properties']['rows']['items'][
        'properties']
    assert table['person_id'].tolist() == list(range(6))
    assert table['when'].str.startswith('2024-02-').all()


def test_get_parameters__and_no_api_key_is_kept(tmp_path):
    # Setup
    data = _real_table()
    llm = {'base_url': 'http://127.0.0.1:9/v1', 'model': 'm', 'api_key': 'sk-very-secret'}
    synthesizer = SynthiaSynthesizer(_metadata(data), llm=llm, batch_size=3, seed=7)
    path = tmp_path / 'synthia.pkl'

    # Run
    parameters = synthesizer.get_parameters()
    synthesizer.save(path)

    # Assert
    assert parameters['llm'] == {'base_url': 'http://127.0.0.1:9/v1', 'model': 'm'}
    assert parameters['batch_size'] == 3
    assert parameters['seed'] == 7
    assert b'sk-very-secret' not in path.read_bytes()
    assert b'sk-very-secret' not in pickle.dumps(synthesizer)


def test_save_and_load__sampling_works_after_loading(tmp_path):
    # Setup
    synthesizer, _ = _fit(max_rounds=1, batch_size=5)
    path = tmp_path / 'synthia.pkl'

    # Run
    synthesizer.save(path)
    loaded = SynthiaSynthesizer.load(path)
    table = loaded.sample(5)['people']

    # Assert
    assert len(table) == 5
    assert loaded.get_history() == synthesizer.get_history()


def test_get_usage__splits_fit_and_sample():
    # Setup
    synthesizer, client = _fit(max_rounds=1, batch_size=5)

    # Run
    synthesizer.sample(5)
    usage = synthesizer.get_usage()

    # Assert
    assert usage['llm_calls'] == len(client.calls)
    assert usage['phases']['fit']['llm_calls'] == 3
    assert usage['phases']['sample']['llm_calls'] == len(client.calls) - 3
    assert usage['phases']['fit']['prompt_tokens'] > 0


def test_get_metadata_encoding__is_computed_by_code():
    # Setup
    data = _real_table()

    # Run
    synthesizer, _ = _fit(data=data, max_rounds=1, batch_size=5)
    encoding = synthesizer.get_metadata_encoding()

    # Assert
    columns = {column['name']: column for column in encoding['columns']}
    assert columns['age']['low'] == data['age'].min()
    assert columns['age']['high'] == data['age'].max()
    assert columns['age']['integer'] is True
    assert columns['color']['categories'][0] == data['color'].value_counts().index[0]
    assert encoding['row_pattern'].startswith(r'^\d{2},\d{1,2},(')


def test_separate_discriminator_client_is_used():
    # Setup
    data = _real_table()
    generator = ScriptedClient(_responder(_random_rows))
    discriminator = ScriptedClient([{'feedback': 'Looks real.', 'decision': 'Real'}])
    synthesizer = SynthiaSynthesizer(
        _metadata(data), llm=generator, discriminator_llm=discriminator, batch_size=5,
    )

    # Run
    synthesizer.fit(data)

    # Assert
    assert len(discriminator.calls) == 1
    assert all(_is_generator_request(call['schema']) for call in generator.calls)
    assert synthesizer.get_fit_summary()['stop_reason'] == 'discriminator_real'
    assert synthesizer.get_usage()['llm_calls'] == len(generator.calls) + 1


def test_sdv_registration__import_from_sdv_single_table():
    # Run
    from sdv.single_table import SynthiaSynthesizer as Registered

    # Assert
    assert Registered is SynthiaSynthesizer


def test_set_llm__replaces_the_clients():
    # Setup
    synthesizer, first = _fit(max_rounds=1, batch_size=5)
    second = ScriptedClient(_responder(_random_rows))

    # Run
    synthesizer.set_llm(second)
    synthesizer.sample(5)

    # Assert
    assert len(second.calls) >= 1
    assert synthesizer.get_parameters()['llm'] is second


def test_fit__pattern_numbers_match_exactly_the_fitted_range():
    # Setup
    data = _real_table()
    data.loc[0, 'hours'] = -12

    def string_rows(seed, size):
        return [
            {**row, 'age': str(row['age']), 'hours': str(row['hours'])}
            for row in _random_rows(seed, size)
        ]

    # Run
    synthesizer, client = _fit(
        data=data, responses=_responder(string_rows), max_rounds=1, batch_size=5,
        numeric_format='pattern',
    )
    table = synthesizer.sample(5)['people']

    # Assert
    row_schema = client.calls[0]['schema']['properties']['rows']['items']['properties']
    for column in ('age', 'hours'):
        assert row_schema[column]['type'] == 'string'
        pattern = re.compile(row_schema[column]['pattern'])
        low, high = data[column].min(), data[column].max()
        for value in range(low - 150, high + 150):
            assert bool(pattern.match(str(value))) == (low <= value <= high), value
        assert not pattern.match('0' + str(high))
    assert table['age'].dtype == np.int64
    assert len(table) == 5
    assert 'Write numbers as strings of digits' in client.calls[0]['messages'][-1]['content']


def test_fit__discriminator_schema_keeps_feedback_and_decision_apart():
    # Run
    _, client = _fit(max_rounds=1, batch_size=5, max_feedback_chars=150)

    # Assert
    schema = next(c for c in client.calls if not _is_generator_request(c['schema']))['schema']
    assert list(schema['properties']) == ['feedback', 'decision']
    assert schema['properties']['feedback'] == {
        'type': 'string', 'minLength': 10, 'maxLength': 150,
    }
    assert schema['required'] == ['feedback', 'decision']


@pytest.mark.parametrize('reply', ['Synthetic data: Real.', 'Real real real', 'Fine rows.'])
def test_fit__decision_words_as_feedback_are_replaced_by_the_analyzer(reply):
    # Run
    synthesizer, client = _fit(
        responses=_responder(_random_rows, feedback=reply),
        max_rounds=2, patience=5, batch_size=5, rows_per_round=5,
    )

    # Assert
    first = synthesizer.get_history()[0]
    assert first['decision'] == 'Synthetic'
    assert first['feedback_source'] == 'analyzer'
    assert first['discriminator_feedback'] == reply
    assert first['feedback'].startswith('The columns ')
    worst = min(first['diagnostics']['columns'], key=lambda entry: entry['score'])['column']
    assert worst in first['feedback']
    second_prompt = [
        call['messages'][-1]['content'] for call in client.calls
        if _is_generator_request(call['schema'])
    ][1]
    assert first['feedback'] in second_prompt
    assert reply not in second_prompt


def test_fit__usable_feedback_comes_from_the_discriminator():
    # Run
    synthesizer, _ = _fit(max_rounds=1, batch_size=5)

    # Assert
    entry = synthesizer.get_history()[0]
    assert entry['feedback_source'] == 'discriminator'
    assert entry['feedback'] == entry['discriminator_feedback'] == 'Add more blue rows.'


def test_fit__prompt_carries_only_the_latest_feedback_and_the_worst_columns():
    # Setup
    replies = iter(['First feedback about red rows.', 'Second feedback about blue rows.'])

    def respond(messages, schema, params):
        if _is_generator_request(schema):
            return {'rows': _random_rows(params['seed'], schema['properties']['rows']['minItems'])}
        return {'feedback': next(replies, 'Later feedback on the rows.'), 'decision': 'Synthetic'}

    # Run
    synthesizer, client = _fit(
        responses=respond, max_rounds=3, patience=5, batch_size=5, rows_per_round=5,
    )

    # Assert
    third_prompt = [
        call['messages'][-1]['content'] for call in client.calls
        if _is_generator_request(call['schema'])
    ][2]
    assert 'Second feedback about blue rows.' in third_prompt
    assert 'First feedback about red rows.' not in third_prompt
    findings = third_prompt.split('Statistical findings on your previous rows:\n')[1]
    findings = findings.split('\nWrite ')[0].splitlines()
    assert len(findings) == 4
    assert all(line.startswith('- ') for line in findings)
    assert synthesizer.get_history()[2]['prompt_feedback'] == ['Second feedback about blue rows.']


def test_sample__max_tokens_are_sized_to_the_rows_asked():
    # Setup
    synthesizer, client = _fit(max_rounds=1, batch_size=5)
    per_row = synthesizer._tokens_per_row()
    client.calls.clear()

    # Run
    synthesizer.sample(14, batch_size=7)

    # Assert
    rows_schema = client.calls[0]['schema']['properties']['rows']
    assert rows_schema['minItems'] == rows_schema['maxItems'] == 7
    assert {call['params']['max_tokens'] for call in client.calls} == {7 * per_row + 16}
    assert synthesizer.batch_size == 5


def test_tokens_per_row__counts_digits_and_column_names():
    # Setup
    data = pd.DataFrame({'amount': [0, 123456] * 10, 'kind': ['ab', 'abcdefgh'] * 10})
    metadata = _metadata(data)
    metadata.update_column('amount', sdtype='numerical')
    metadata.update_column('kind', sdtype='categorical')
    synthesizer = SynthiaSynthesizer(metadata, llm=ScriptedClient([]))
    synthesizer._specs = synthesizer._build_specs(data)
    synthesizer._row_format = 'array'

    # Run
    array_tokens = synthesizer._tokens_per_row()
    synthesizer._row_format = 'object'
    object_tokens = synthesizer._tokens_per_row()

    # Assert
    # array: 4 + (3 + 6 digits) + (3 + ceil(8 / 2)) = 20, times 1.25
    assert array_tokens == 25
    # object adds 3 + ceil(len(name) / 2) per column: 6 + 5 = 11 -> 31 * 1.25
    assert object_tokens == math.ceil(31 * 1.25)


def test_fit__row_format_auto_writes_objects_for_endpoints_and_arrays_for_the_embedded_model(
        monkeypatch):
    # Run
    endpoint, endpoint_client = _fit(max_rounds=1, batch_size=5)
    monkeypatch.setattr(SynthiaSynthesizer, '_uses_embedded_model', lambda self: True)
    embedded, embedded_client = _fit(
        responses=_responder(lambda seed, size: [
            list(row.values()) for row in _random_rows(seed, size)
        ]),
        max_rounds=1, batch_size=5, numeric_format='number',
    )

    # Assert
    assert endpoint_client.calls[0]['schema']['properties']['rows']['items']['type'] == 'object'
    assert embedded_client.calls[0]['schema']['properties']['rows']['items']['type'] == 'array'
    assert embedded.get_history()[0]['num_valid'] == 10
    assert 'each row an array of 4 values' in embedded.get_generator_prompt()[-1]['content']


def test_sample__last_wave_asks_only_for_the_rows_still_needed():
    # Setup
    synthesizer, client = _fit(max_rounds=1, batch_size=5)
    client.calls.clear()

    # Run
    table = synthesizer.sample(12)['people']

    # Assert
    sizes = [call['schema']['properties']['rows']['minItems'] for call in client.calls]
    assert sizes == [5, 5, 2]
    assert 'Write 2 new rows' in client.calls[-1]['messages'][-1]['content']
    assert client.calls[-1]['params']['max_tokens'] == synthesizer._max_tokens(2)
    assert synthesizer.get_sampling_report()['generated_rows'] == len(table) == 12
