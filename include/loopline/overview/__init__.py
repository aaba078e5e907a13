"""What the Loopline view in the Airflow UI shows of a pipeline, read through the library."""

from loopline.overview.pipeline import PipelineOverview, pipeline_overview
from loopline.overview.reports import Report, ReportNotFound, read_report

__all__ = ["PipelineOverview", "Report", "ReportNotFound", "pipeline_overview", "read_report"]
