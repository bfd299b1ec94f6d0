"""The ``dashboards`` config section: names the generated dashboards and provisioning files agree on."""

from __future__ import annotations

from dataclasses import dataclass, field

from corrtrace.endpoints import backend_url

# Panels query through datasource template variables; these are the variables' default data sources,
# the uids the generated provisioning files give the Elasticsearch and CloudWatch data sources.
ES_UID = "corrtrace-es"
CW_UID = "corrtrace-cw"


@dataclass
class DashboardsSettings:
    """Read with ``corrtrace.config.load_section("dashboards", DashboardsSettings)``."""

    es_datasource_uid: str = ES_UID
    cw_datasource_uid: str = CW_UID
    es_url: str = field(default_factory=lambda: backend_url("ES"))  # $ES_URL, else $ES_PORT
    index_pattern: str = "logs-corrtrace-*"
    cw_region: str = "us-east-1"
    cw_account_id: str = "000000000000"
    cw_log_groups: list[str] = field(default_factory=lambda: ["/corrtrace/services"])
    metric_namespace: str = "Corrtrace"
    folder: str = "corrtrace"
    folder_uid: str = "corrtrace"
    grafana_url: str = "http://127.0.0.1:3000"
    dashboards_path: str = "/var/lib/grafana/dashboards/corrtrace"
