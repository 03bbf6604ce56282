"""Checkpoints of the synthesis loop: append-only batches plus one JSON state, written atomically.

After every iteration the loop writes

- ``batch_<iteration>.pkl``: the records the iteration accepted (and, for parent/child, their
  persons) and the iteration's proposals with their accepted counts, then
- ``state.json``: the iteration reached, the history, the rejection counts, the anchor
  outcomes, the LLM usage, the planner's own state and the list of batch files.

Both are written to a temporary file and moved into place with ``os.replace``, state last, so
the state always points at complete batches: an interruption (a crash, Ctrl-C) at any moment
leaves the last complete iteration valid, and a resumed run neither loses nor duplicates
records. Only the new batch is written each iteration, so the cost does not grow with the pool.

A checkpoint belongs to one run: its fingerprint holds the spec hash, the seed, the planner's
name and the settings that change the trajectory. Resuming with anything else raises
:class:`~sdv_llmsynthor.errors.CheckpointMismatchError`. Nothing secret is written: planners
expose only their name and :meth:`Planner.get_state`.

The batch files are pickles: resume only from folders you wrote yourself.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from typing import Any

from sdv_llmsynthor.errors import CheckpointMismatchError

__all__ = ['CHECKPOINT_FORMAT', 'CheckpointStore', 'spec_hash']

CHECKPOINT_FORMAT = 1
STATE_FILE = 'state.json'


def spec_hash(spec: Any) -> str:
    """SHA-256 of the spec's canonical JSON (sorted keys).

    Args:
        spec (MacroSpec):
            The spec.

    Returns:
        str
    """
    text = json.dumps(spec.to_dict(), sort_keys=True, ensure_ascii=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(path) or '.'
    handle, temporary = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.part')
    try:
        with os.fdopen(handle, 'wb') as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class CheckpointStore:
    """Read and write the checkpoints of one run in a folder.

    Args:
        directory (str or PathLike):
            The folder (created if missing).
        fingerprint (dict):
            What identifies the run: ``spec_hash``, ``seed``, ``planner`` and ``settings``.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict[str, Any]):
        self.directory = os.fspath(directory)
        self.fingerprint = dict(fingerprint)
        self.fingerprint['format'] = CHECKPOINT_FORMAT

    @property
    def state_path(self) -> str:
        """str: Path of the JSON state."""
        return os.path.join(self.directory, STATE_FILE)

    def exists(self) -> bool:
        """bool: Whether the folder holds a checkpoint."""
        return os.path.exists(self.state_path)

    def load(self) -> dict[str, Any] | None:
        """Read the state, checking that it belongs to this run.

        Returns:
            dict or None:
                The state, or None when the folder holds no checkpoint.

        Raises:
            CheckpointMismatchError:
                If the checkpoint was written by a run with another spec, seed, planner or
                settings.
        """
        if not self.exists():
            return None
        with open(self.state_path, encoding='utf-8') as stream:
            state = json.load(stream)
        stored = state.get('fingerprint', {})
        differences = {}
        for key, value in self.fingerprint.items():
            if json.dumps(stored.get(key), sort_keys=True) != json.dumps(value, sort_keys=True):
                differences[key] = (stored.get(key), value)
        if differences:
            parts = []
            for key, (old, new) in differences.items():
                if key == 'spec_hash':
                    parts.append('the spec differs')
                else:
                    parts.append(f'{key} is {old!r} in the checkpoint but {new!r} in this run')
            raise CheckpointMismatchError(
                f'The checkpoint in {self.directory} belongs to another run: '
                f"{'; '.join(parts)}. Resume with the same spec, seed, planner and settings, "
                'or pass another checkpoint_dir (or delete this one) to start afresh.',
                differences,
            )
        return state

    def load_batch(self, name: str) -> dict[str, Any]:
        """Read one batch file named in the state."""
        with open(os.path.join(self.directory, name), 'rb') as stream:
            return pickle.load(stream)

    def save(self, iteration: int, state: dict[str, Any],
             batch: dict[str, Any] | None) -> list[str]:
        """Write one iteration: its batch first, then the state that points at it.

        Args:
            iteration (int):
                The iteration just completed.
            state (dict):
                JSON-serialisable state (``batches`` lists the batch files so far; the new
                file's name is appended here).
            batch (dict or None):
                What the iteration added (None when nothing).

        Returns:
            list[str]:
                The batch files the state now lists.
        """
        os.makedirs(self.directory, exist_ok=True)
        state = dict(state)
        batches = list(state.get('batches', []))
        if batch is not None:
            name = f'batch_{iteration:05d}.pkl'
            _atomic_write(os.path.join(self.directory, name),
                          pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
            if name not in batches:
                batches.append(name)
        state['batches'] = batches
        state['fingerprint'] = self.fingerprint
        text = json.dumps(state, sort_keys=True, ensure_ascii=False, allow_nan=True)
        _atomic_write(self.state_path, text.encode('utf-8'))
        return batches
