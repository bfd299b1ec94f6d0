#!/usr/bin/env bash
# Start/stop a real single-node Elasticsearch 8.19 (OSS server jar + transport-netty4,
# all from Maven Central) for corrtrace's tests. No Docker, no ES tarball.
#
#   es.sh start    build the launcher if needed, start the node, wait for yellow health
#   es.sh stop     stop the node (SIGTERM, then SIGKILL after 30 s)
#   es.sh status   exit 0 if running and healthy, 3 if not running, 1 if unhealthy
#   es.sh restart  stop + start
#   es.sh build    only resolve jars and build the launcher (e.g. to warm ~/.m2 in CI)
#
# Environment:
#   ES_PORT                 HTTP port (default 9200); transport uses ES_TRANSPORT_PORT (default 9300-9399)
#   ES_KEEP_DATA=1          keep the data dir on start (default: wipe it, clean node every start)
#   CORRTRACE_SERVICES_DIR  work dir (default <repo>/.services); files go to $dir/elasticsearch/
#   ES_JAVA                 java binary (default $JAVA_HOME/bin/java, else java on PATH); needs Java >= 17
#   ES_HEAP                 max heap (default 1g; initial heap 512m or ES_HEAP if smaller)
#   ES_JAVA_OPTS            extra JVM options
#   ES_START_TIMEOUT        seconds to wait for health (default 180)
set -euo pipefail

NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_NAME=elasticsearch SHORT=es PRODUCT=Elasticsearch PREFIX=ES
MAIN_CLASS="org.elasticsearch.node.CorrtraceEsLauncher"
DEFAULT_PORT=9200 DEFAULT_TRANSPORT_PORT=9300-9399 DEFAULT_HEAP=1g MIN_HEAP_MB=512
# shellcheck source=../lib/jvm-node.sh
source "$NODE_DIR/../lib/jvm-node.sh"
