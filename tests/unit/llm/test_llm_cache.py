import json

from sdv_llmsynthor.llm.cache import ResponseCache

SCHEMA = {
    'type': 'object',
    'properties': {'n': {'type': 'integer', 'maximum': 10}},
    'required': ['n'],
}
MESSAGES = [{'role': 'user', 'content': 'Pick a number.'}]


def test_make_key__sensitive_to_every_input(tmp_path):
    # Setup
    cache = ResponseCache(tmp_path)
    base = ('m', 'host', MESSAGES, SCHEMA, {'seed': 1, 'temperature': 0.5})

    # Run
    key = cache.make_key(*base)
    variants = [
        cache.make_key('m2', *base[1:]),
        cache.make_key('m', 'other-host', *base[2:]),
        cache.make_key('m', 'host', [{'role': 'user', 'content': 'x'}], *base[3:]),
        cache.make_key('m', 'host', MESSAGES, {**SCHEMA, 'title': 't'}, base[4]),
        cache.make_key(*base[:4], {'seed': 2, 'temperature': 0.5}),
        cache.make_key(*base[:4], {'seed': 1}),
    ]

    # Assert
    assert key == cache.make_key('m', 'host', MESSAGES, SCHEMA, {'temperature': 0.5, 'seed': 1})
    assert len(key) == 64
    assert key not in variants
    assert len(set(variants)) == len(variants)


def test_put_get__roundtrip_and_sharding(tmp_path):
    # Setup
    cache = ResponseCache(tmp_path / 'cache')
    key = cache.make_key('m', 'host', MESSAGES, SCHEMA, {})

    # Run
    path = cache.put(key, {'n': 3}, 'json_object', 12, 4)
    entry = cache.get(key, SCHEMA)

    # Assert
    assert path == tmp_path / 'cache' / key[:2] / f'{key}.json'
    assert entry['data'] == {'n': 3}
    assert (entry['mode'], entry['prompt_tokens'], entry['completion_tokens']) == (
        'json_object', 12, 4)
    assert [file.name for file in path.parent.iterdir()] == [path.name]


def test_get__missing_corrupt_or_invalid(tmp_path, caplog):
    # Setup
    cache = ResponseCache(tmp_path)
    key = cache.make_key('m', 'host', MESSAGES, SCHEMA, {})
    missing = cache.get(key, SCHEMA)
    path = cache.put(key, {'n': 3}, 'text')

    # Run
    path.write_text('{not json', encoding='utf-8')
    corrupt = cache.get(key, SCHEMA)
    path.write_text(json.dumps({'version': 1, 'data': {'n': 99}, 'mode': 'text'}), encoding='utf-8')
    invalid = cache.get(key, SCHEMA)
    cache.put(key, {'n': 4}, 'text')
    repaired = cache.get(key, SCHEMA)

    # Assert
    assert (missing, corrupt, invalid) == (None, None, None)
    assert repaired['data'] == {'n': 4}
    assert 'its payload fails the schema ($.n: 99 is greater than the maximum of 10)' in caplog.text


def test_put__entry_holds_no_request(tmp_path):
    # Setup
    cache = ResponseCache(tmp_path)
    key = cache.make_key('m', 'host', MESSAGES, SCHEMA, {})

    # Run
    path = cache.put(key, {'n': 1}, 'text')

    # Assert
    entry = json.loads(path.read_text(encoding='utf-8'))
    assert set(entry) == {'version', 'data', 'mode', 'prompt_tokens', 'completion_tokens',
                          'created'}
