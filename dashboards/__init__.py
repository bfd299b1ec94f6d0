"""corrtrace.dashboards: Grafana dashboards for one request's flow, service health, alerts and rollbacks;
validated offline against Grafana's JSON Schemas plus a lint; provisioned as files or imported by API."""

from corrtrace.dashboards.build import build_all, write_all
from corrtrace.dashboards.grafana_api import GrafanaClient, GrafanaError, ImportResult
from corrtrace.dashboards.problems import Problem
from corrtrace.dashboards.settings import DashboardsSettings
from corrtrace.dashboards.validate import validate_dashboard, validate_file

__all__ = [
    "DashboardsSettings",
    "GrafanaClient",
    "GrafanaError",
    "ImportResult",
    "Problem",
    "build_all",
    "validate_dashboard",
    "validate_file",
    "write_all",
]
