"""Says where the reports are once a run that wrote them has finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

REPORT_OUTPUTS = {"dataset_report_html": "Report", "index_html": "Index of every dataset run"}


class ReportLocationHooks:
    """Prints the absolute path of each HTML report the finished run wrote."""

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        written = [name for name in REPORT_OUTPUTS if name in pipeline.all_outputs()]
        if not written:
            return
        config = catalog.to_config()[0]
        project = Path(run_params["project_path"])
        for name in written:
            path = Path(config[name]["filepath"])
            # Printed, not logged: the log handler wraps long paths, and this is the line a
            # user copies into a browser.
            print(f"{REPORT_OUTPUTS[name]}: {(project / path).resolve()}", flush=True)
