"""Run SDMetrics' quality and diagnostic reports on synthetic data, and save their figures.

SDV 2.x evaluates through ``sdv.evaluation.evaluate_quality`` and ``run_diagnostic``, which
build SDMetrics' unified ``QualityReport`` and ``DiagnosticReport`` for one table or several
(parent/child) tables alike. :func:`run_sdmetrics_reports` runs both, and when given a folder
writes the property scores, the per-property details and every figure. The figures are plotly
figures: they are written as standalone HTML; PNG files are added only when the optional
``kaleido`` package happens to be installed (it is not a dependency).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import pandas as pd

from sdv_llmsynthor.evaluation.fidelity import _as_tables as _tables_by_name
from sdv_llmsynthor.evaluation.fidelity import _load_metadata, _output_folder, _slug

__all__ = ['SDMetricsReports', 'run_sdmetrics_reports']


def _as_tables(data, metadata, name):
    # SDV checks the table names itself; wrong input raises the built-in errors, as before.
    return _tables_by_name(data, metadata, name, check_names=False, value_error=ValueError,
                           type_error=TypeError)


@dataclass
class SDMetricsReports:
    """The two SDMetrics reports of one synthetic dataset, and the files written for them.

    Args:
        quality (sdmetrics.reports.QualityReport):
            Column shapes, column pair trends (and, for several tables, cardinality and
            inter-table trends).
        diagnostic (sdmetrics.reports.DiagnosticReport):
            Data validity, data structure (and relationship validity for several tables).
        files (list[pathlib.Path]):
            Files written by :func:`run_sdmetrics_reports` (empty when no folder was given).
    """

    quality: object
    diagnostic: object
    files: list = field(default_factory=list)

    @property
    def quality_score(self):
        """float: The overall quality score (0 to 1, higher is better)."""
        return float(self.quality.get_score())

    @property
    def diagnostic_score(self):
        """float: The overall diagnostic score (0 to 1, higher is better)."""
        return float(self.diagnostic.get_score())

    def summary(self):
        """Return one row per report property: ``report``, ``property``, ``score``.

        Returns:
            pandas.DataFrame
        """
        frames = []
        for name, report in (('quality', self.quality), ('diagnostic', self.diagnostic)):
            properties = report.get_properties().rename(
                columns={'Property': 'property', 'Score': 'score'})
            properties.insert(0, 'report', name)
            frames.append(properties)
            frames.append(pd.DataFrame(
                [{'report': name, 'property': 'Overall', 'score': report.get_score()}]))
        return pd.concat(frames, ignore_index=True)


def _save_figure(figure, base_path, files, write_png):
    html_path = base_path.with_suffix('.html')
    figure.write_html(str(html_path), include_plotlyjs='cdn')
    files.append(html_path)
    if write_png:
        png_path = base_path.with_suffix('.png')
        try:
            figure.write_image(str(png_path))
            files.append(png_path)
        except Exception:  # noqa: BLE001 - kaleido may be present but unusable; HTML suffices
            pass


def _save_report(report, name, table_names, folder, files, write_png):
    for property_name in report.get_properties()['Property']:
        try:
            details = report.get_details(property_name)
        except Exception:  # noqa: BLE001 - a property may have no details table
            details = None
        if isinstance(details, pd.DataFrame) and not details.empty:
            path = folder / f'{name}_{_slug(property_name, max_length=None)}.csv'
            details.to_csv(path, index=False)
            files.append(path)

        targets = [None] if len(table_names) == 1 else [*table_names]
        for table_name in targets:
            try:
                if table_name is None:
                    figure = report.get_visualization(property_name, table_names[0])
                else:
                    figure = report.get_visualization(property_name, table_name)
            except Exception:  # noqa: BLE001 - e.g. no column pairs, or not applicable
                continue
            suffix = '' if table_name is None else f'_{_slug(table_name, max_length=None)}'
            base = folder / f'{name}_{_slug(property_name, max_length=None)}{suffix}'
            _save_figure(figure, base, files, write_png)


def run_sdmetrics_reports(real_data, synthetic_data, metadata, output_dir=None,
                          constraints=None, verbose=False):
    """Run SDMetrics' ``QualityReport`` and ``DiagnosticReport`` and optionally save them.

    Works for one table (a DataFrame, or a dict with one table) and for parent/child tables (a
    dict of DataFrames), through ``sdv.evaluation.evaluate_quality`` and ``run_diagnostic``.

    Args:
        real_data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            The real rows.
        synthetic_data (pandas.DataFrame or dict[str, pandas.DataFrame]):
            The synthetic rows, in the same form.
        metadata (sdv.metadata.Metadata, dict or path):
            The SDV metadata of both.
        output_dir (str or pathlib.Path or None):
            When given, the folder (created if needed) where ``sdmetrics_scores.csv``, one
            CSV of details per property and one HTML figure per property (and table) are
            written; PNG copies of the figures only when ``kaleido`` is installed.
        constraints (list[dict] or None):
            Constraint dicts for the diagnostic report's constraint validity property.
        verbose (bool):
            Whether SDMetrics prints its progress.

    Returns:
        SDMetricsReports
    """
    from sdv.evaluation import evaluate_quality, run_diagnostic

    metadata = _load_metadata(metadata)
    real_tables = _as_tables(real_data, metadata, 'real_data')
    synthetic_tables = _as_tables(synthetic_data, metadata, 'synthetic_data')
    quality = evaluate_quality(real_tables, synthetic_tables, metadata, verbose=verbose)
    diagnostic = run_diagnostic(real_tables, synthetic_tables, metadata,
                                constraints=constraints, verbose=verbose)
    result = SDMetricsReports(quality=quality, diagnostic=diagnostic)
    if output_dir is None:
        return result

    folder = _output_folder(output_dir)
    scores_path = folder / 'sdmetrics_scores.csv'
    result.summary().to_csv(scores_path, index=False)
    result.files.append(scores_path)
    write_png = importlib.util.find_spec('kaleido') is not None
    table_names = list(real_tables)
    _save_report(quality, 'quality', table_names, folder, result.files, write_png)
    _save_report(diagnostic, 'diagnostic', table_names, folder, result.files, write_png)
    return result
