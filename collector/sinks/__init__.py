"""Where log lines go: Elasticsearch/OpenSearch, CloudWatch Logs, the embedded SQLite store."""
