"""On-disk cache of validated LLM responses.

A rerun with the same seed makes no new call, and a resumed run reuses what was paid for.
One JSON file per key, in sharded sub-folders (``ab/abcdef....json``), written atomically
(temporary file, then ``os.replace``). Keys are SHA-256 digests of everything that determines
a response: the package version, the model, the endpoint host, the messages, the schema and
the sampling parameters (seed included). Entries hold the parsed object, the structured-output
mode and the token counts: never a header, a key or a full URL.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from sdv_llmsynthor.llm.structured import canonical_json, schema_errors

LOGGER = logging.getLogger(__name__)
_ENTRY_VERSION = 1


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """Return the installed version of sdv-llmsynthor (``'unknown'`` when not installed).

    Returns:
        str:
            The version string.
    """
    try:
        return metadata.version('sdv-llmsynthor')
    except metadata.PackageNotFoundError:
        return 'unknown'


class ResponseCache:
    """A folder of cached, schema-validated LLM responses.

    Args:
        folder (str or pathlib.Path):
            Where the entries live. Created on first write.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def make_key(
        self,
        model: str,
        endpoint: str,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        params: dict[str, Any],
    ) -> str:
        """Return the cache key of a request.

        Args:
            model (str):
                The model name.
            endpoint (str):
                The endpoint host (never a full URL with credentials), or ``'local'``.
            messages (list[dict]):
                The chat messages.
            schema (dict):
                The JSON Schema.
            params (dict):
                The sampling parameters, seed included.

        Returns:
            str:
                A 64-character hexadecimal SHA-256 digest.
        """
        material = {
            'package_version': package_version(),
            'model': model,
            'endpoint': endpoint,
            'messages': messages,
            'schema': schema,
            'params': params,
        }
        return hashlib.sha256(canonical_json(material).encode('utf-8')).hexdigest()

    def path_for(self, key: str) -> Path:
        """Return the file of ``key``.

        Args:
            key (str):
                A key from :meth:`make_key`.

        Returns:
            pathlib.Path:
                ``folder / key[:2] / f'{key}.json'``.
        """
        if len(key) < 3 or not all(char in '0123456789abcdef' for char in key):
            raise ValueError(f'Invalid cache key {key!r}: expected a hexadecimal digest.')

        return self.folder / key[:2] / f'{key}.json'

    def get(self, key: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        """Return the cached entry of ``key`` if it exists and its object satisfies ``schema``.

        Unreadable or invalid entries are ignored (and overwritten by the next :meth:`put`).

        Args:
            key (str):
                A key from :meth:`make_key`.
            schema (dict):
                The JSON Schema the cached object must satisfy.

        Returns:
            dict or None:
                ``{'data': ..., 'mode': ..., 'prompt_tokens': ..., 'completion_tokens': ...}``.
        """
        path = self.path_for(key)
        try:
            with open(path, encoding='utf-8') as file:
                entry = json.load(file)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            LOGGER.warning('Ignoring unreadable cache entry %s: %s', path.name, error)
            return None

        if (
            not isinstance(entry, dict)
            or entry.get('version') != _ENTRY_VERSION
            or not isinstance(entry.get('data'), dict)
        ):
            LOGGER.warning('Ignoring malformed cache entry %s.', path.name)
            return None

        problems = schema_errors(entry['data'], schema)
        if problems:
            LOGGER.warning(
                'Ignoring cache entry %s: its payload fails the schema (%s).',
                path.name,
                '; '.join(problems),
            )
            return None

        return entry

    def put(
        self,
        key: str,
        data: dict[str, Any],
        mode: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> Path:
        """Store a validated object under ``key``, atomically.

        Args:
            key (str):
                A key from :meth:`make_key`.
            data (dict):
                The validated JSON object.
            mode (str):
                The structured-output mode that produced it.
            prompt_tokens (int):
                Prompt tokens it cost.
            completion_tokens (int):
                Completion tokens it cost.

        Returns:
            pathlib.Path:
                The file written.
        """
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            'version': _ENTRY_VERSION,
            'data': data,
            'mode': mode,
            'prompt_tokens': int(prompt_tokens),
            'completion_tokens': int(completion_tokens),
            'created': time.time(),
        }
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix='.tmp-', suffix='.json')
        try:
            with os.fdopen(descriptor, 'w', encoding='utf-8') as file:
                json.dump(entry, file, ensure_ascii=False, sort_keys=True)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise

        return path

    def __repr__(self) -> str:
        return f'ResponseCache({str(self.folder)!r})'
