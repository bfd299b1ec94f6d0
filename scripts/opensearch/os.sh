#!/usr/bin/env bash
# Start/stop a real single-node OpenSearch 2.19 (server jar + transport-netty4-client,
# all from Maven Central) for corrtrace's tests. No Docker, no tarball, no security plugin (plain HTTP).
#
#   os.sh start    build the launcher if needed, start the node, wait for yellow health
#   os.sh stop     stop the node (SIGTERM, then SIGKILL after 30 s)
#   os.sh status   exit 0 if running and healthy, 3 if not running, 1 if unhealthy
#   os.sh restart  stop + start
#   os.sh build    only resolve jars and build the launcher (e.g. to warm ~/.m2 in CI)
#
# Environment:
#   OS_PORT                 HTTP port (default 9201); transport uses OS_TRANSPORT_PORT (default 9400-9499)
#   OS_KEEP_DATA=1          keep the data dir on start (default: wipe it, clean node every start)
#   CORRTRACE_SERVICES_DIR  work dir (default <repo>/.services); files go to $dir/opensearch/
#   OS_JAVA                 java binary (default $JAVA_HOME/bin/java, else java on PATH); needs Java >= 17
#   OS_HEAP                 max heap (default 512m; initial heap 256m or OS_HEAP if smaller)
#   OS_JAVA_OPTS            extra JVM options
#   OS_START_TIMEOUT        seconds to wait for health (default 180)
set -euo pipefail

NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_NAME=opensearch SHORT=os PRODUCT=OpenSearch PREFIX=OS
MAIN_CLASS="org.opensearch.node.CorrtraceOsLauncher"
DEFAULT_PORT=9201 DEFAULT_TRANSPORT_PORT=9400-9499 DEFAULT_HEAP=512m MIN_HEAP_MB=256
# shellcheck source=../lib/jvm-node.sh
source "$NODE_DIR/../lib/jvm-node.sh"
