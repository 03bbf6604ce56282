"""Run the real PopulationSim 0.10.0 as a peer, in a virtual environment of its own.

PopulationSim 0.10.0 pins ``numpy<2`` (and breaks on pandas 3) while this project uses numpy 2,
so it cannot share the project's environment: :func:`ensure_venv` builds
``.venv-populationsim/`` at the repository root once (git-ignored) and :func:`run_populationsim`
runs its ``populationsim`` console script in a child process, timing it and reading the child's
peak resident memory from ``os.wait4``.

Run from the repository root::

    python -m evaluation.populationsim_runner \\
        --configs ../shared/data/populationsim/example_test/configs \\
        --data ../shared/data/populationsim/example_test/data -o out/populationsim
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPOSITORY_ROOT / '.venv-populationsim'
REQUIREMENTS = ('populationsim==0.10.0', 'pandas<3')
MARKER = '.populationsim-0.10.0-ok'
SUPPORTED = ((3, 9), (3, 12))  # populationsim 0.10.0: Requires-Python >=3.9,<3.13
_VERSION_CHECK = (f'import sys; sys.exit(not {SUPPORTED[0]} <= sys.version_info[:2] '
                  f'<= {SUPPORTED[1]})')

logger = logging.getLogger(__name__)


def _base_python() -> str | None:
    """Return a Python interpreter that PopulationSim 0.10.0 supports, or None."""
    candidates = [sys.executable] if SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1] else []
    candidates += [p for p in map(shutil.which, ('python3.11', 'python3.12', 'python3.10')) if p]
    for python in candidates:
        # pyenv shims exist for versions that are not installed: run each one to be sure.
        if subprocess.run([python, '-c', _VERSION_CHECK], capture_output=True).returncode == 0:
            return python
    return None


def _imports(venv: Path) -> bool:
    """Whether ``import populationsim`` works in the environment ``venv``."""
    python = venv / 'bin' / 'python'
    return python.exists() and subprocess.run(
        [str(python), '-c', 'import populationsim'], capture_output=True).returncode == 0


def ensure_venv(path: Path = DEFAULT_VENV) -> Path | None:
    """Build (once) the virtual environment that runs PopulationSim 0.10.0.

    Parameters
    ----------
    path : Path
        Folder of the environment; ``.venv-populationsim/`` at the repository root by default.

    Returns
    -------
    Path or None
        The environment's ``populationsim`` console script, or None (with the reason logged as
        a warning) when no supported Python (3.9-3.12) is found or the install fails.
    """
    path = Path(path)
    script = path / 'bin' / 'populationsim'
    if script.exists() and ((path / MARKER).exists() or _imports(path)):
        (path / MARKER).touch()
        return script
    python = _base_python()
    if python is None:
        logger.warning('PopulationSim not run: it needs Python 3.9-3.12 and none was found')
        return None
    steps = [[python, '-m', 'venv', str(path)],
             [str(path / 'bin' / 'python'), '-m', 'pip', 'install', '-q', *REQUIREMENTS]]
    for step in steps[int((path / 'bin' / 'python').exists()):]:
        logger.info('building the PopulationSim environment: %s', ' '.join(step))
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as error:
            logger.warning('PopulationSim not run: %s failed: %s', step[2], error)
            return None
        if done.returncode != 0:
            logger.warning('PopulationSim not run: %s failed:\n%s', ' '.join(step[:4]),
                           done.stderr[-2000:])
            return None
    if not (script.exists() and _imports(path)):
        logger.warning('PopulationSim not run: installed, but `import populationsim` fails')
        return None
    (path / MARKER).touch()
    return script


def _set_integerization(settings: Path, integerize: bool) -> None:
    """Write ``NO_INTEGERIZATION_EVER: <not integerize>`` into a settings.yaml in place."""
    line = f'NO_INTEGERIZATION_EVER: {not integerize}'
    text = settings.read_text()
    text, found = re.subn(r'^NO_INTEGERIZATION_EVER:.*$', line, text, flags=re.MULTILINE)
    settings.write_text(text if found else f'{line}\n{text}')


def run_measured(command: list[str], log_path: Path, timeout: float = 3600,
                 env: dict | None = None) -> tuple[int, float, float, bool]:
    """Run a command with its output in ``log_path``; measure its wall time and peak memory.

    Returns
    -------
    tuple
        ``(returncode, seconds, peak_rss_mb, timed_out)``; the peak resident memory is the
        child's own (``os.wait4``), unlike ``RUSAGE_CHILDREN``, which keeps the largest child.
    """
    with open(log_path, 'wb') as log:
        start, timed_out = time.perf_counter(), False
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                child.kill()
                timed_out = True
                _, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    child.returncode = returncode = os.waitstatus_to_exitcode(status)
    return returncode, round(seconds, 3), round(usage.ru_maxrss / 1024, 1), timed_out  # KiB


def run_populationsim(configs_dir, data_dir, output_dir, integerize: bool = True,
                      timeout: float = 3600, venv: Path = DEFAULT_VENV) -> dict:
    """Run PopulationSim on a configs folder and a data folder.

    Parameters
    ----------
    configs_dir, data_dir, output_dir : str or Path
        PopulationSim's ``-c``, ``-d`` and ``-o`` folders. ``configs_dir`` is copied to a
        temporary folder and only the copy is edited; ``output_dir`` is created if needed.
    integerize : bool
        Sets ``NO_INTEGERIZATION_EVER`` to ``not integerize`` in the copied settings.yaml:
        True gives integer household weights, False keeps the balanced float weights.
    timeout : float
        Seconds after which the run is killed.
    venv : Path
        The environment given to :func:`ensure_venv`.

    Returns
    -------
    dict
        ``returncode``, ``seconds`` (wall time), ``peak_rss_mb`` (the child's peak resident
        memory), ``output_dir``, ``files`` (sorted paths relative to ``output_dir``) and
        ``stderr_tail`` (the last 3,000 characters of its merged stdout and stderr).

    Raises
    ------
    RuntimeError
        When the environment cannot be built, or the run times out or exits non-zero.
    """
    script = ensure_venv(venv)
    if script is None:
        raise RuntimeError('the PopulationSim environment could not be built (see the log)')
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='psim_') as tmp:
        configs = Path(tmp) / 'configs'
        shutil.copytree(configs_dir, configs)
        _set_integerization(configs / 'settings.yaml', integerize)
        command = [str(script), '-c', str(configs), '-d', str(Path(data_dir).resolve()),
                   '-o', str(output_dir)]
        log_path = Path(tmp) / 'console.log'
        returncode, seconds, peak_rss_mb, timed_out = run_measured(command, log_path, timeout)
        tail = log_path.read_text(errors='replace')[-3000:]
    result = {
        'returncode': returncode,
        'seconds': round(seconds, 3),
        'peak_rss_mb': peak_rss_mb,
        'output_dir': str(output_dir),
        'files': sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob('*')
                        if p.is_file()),
        'stderr_tail': tail,
    }
    if timed_out:
        raise RuntimeError(f'PopulationSim timed out after {timeout} s:\n{tail}')
    if returncode != 0:
        raise RuntimeError(f'PopulationSim exited with {returncode}:\n{tail}')
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: run PopulationSim on one example and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', required=True, help='PopulationSim configs folder')
    parser.add_argument('--data', required=True, help='PopulationSim data folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--no-integerize', action='store_true',
                        help='keep float weights (NO_INTEGERIZATION_EVER: True)')
    parser.add_argument('--timeout', type=float, default=3600, help='seconds (default 3600)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
    result = run_populationsim(args.configs, args.data, args.output,
                               integerize=not args.no_integerize, timeout=args.timeout)
    print(json.dumps(result, indent=2))


if __name__ == '__main__':
    main()
