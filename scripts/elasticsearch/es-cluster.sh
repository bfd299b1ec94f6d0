#!/usr/bin/env bash
# A real 3-node Elasticsearch 8.19 cluster from the same Maven Central jars and launcher as es.sh: its own
# cluster name, HTTP 127.0.0.1:9221-9223, transport 127.0.0.1:9521-9523, real discovery (seed hosts) and
# master election (every node master-eligible and a data node). For tests of node failures.
#
#   es-cluster.sh start          start the nodes that are not running, wait until each answers (yellow)
#   es-cluster.sh stop           stop every node (SIGTERM, then SIGKILL after 30 s)
#   es-cluster.sh status         exit 0 if every node runs and the cluster is green or yellow
#   es-cluster.sh kill N         SIGKILL node N (1..3) -- a crash, not a shutdown; exit 1 if it is not running
#   es-cluster.sh start-node N   (re)start node N keeping its data, so it rejoins as the same node
#
# Environment: ES_CLUSTER_HEAP (default 512m per node, initial = max: no heap resizing), ES_CLUSTER_NAME (corrtrace-cluster),
# ES_CLUSTER_START_TIMEOUT (seconds a node may take to join, default 600),
# ES_CLUSTER_HTTP_BASE (9220: node N listens on base+N), ES_CLUSTER_TRANSPORT_BASE (9520),
# CORRTRACE_SERVICES_DIR (files go to $dir/es-cluster/node-N/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODES=3
HTTP_BASE="${ES_CLUSTER_HTTP_BASE:-9220}"
TRANSPORT_BASE="${ES_CLUSTER_TRANSPORT_BASE:-9520}"
CLUSTER_NAME="${ES_CLUSTER_NAME:-corrtrace-cluster}"

node() { # N command [keep-data]: run one jvm-node.sh command for node N in a subshell
    local n="$1" cmd="$2" keep="${3:-0}"
    (
        NODE_DIR="$HERE"
        NODE_NAME="es-cluster/node-$n" SHORT=es PRODUCT="Elasticsearch node-$n" PREFIX="ES_CLUSTER_NODE$n"
        MAIN_CLASS="org.elasticsearch.node.CorrtraceEsLauncher"
        DEFAULT_PORT=$((HTTP_BASE + n)) DEFAULT_TRANSPORT_PORT=$((TRANSPORT_BASE + n))
        DEFAULT_HEAP="${ES_CLUSTER_HEAP:-512m}" MIN_HEAP_MB=512
        export "ES_CLUSTER_NODE${n}_KEEP_DATA=$keep" "ES_CLUSTER_NODE${n}_START_TIMEOUT=${ES_CLUSTER_START_TIMEOUT:-600}"
        seeds=""
        for ((i = 1; i <= NODES; i++)); do seeds+="${seeds:+,}127.0.0.1:$((TRANSPORT_BASE + i))"; done
        # node-1 alone bootstraps the first voting configuration (no split votes on a busy machine); the others
        # join it and the configuration grows to all three, so any one node may die after that
        # and on 2 cores shared with the test suite a node may stall for seconds (CPU, GC): the fault-detection
        # checks get 30 s instead of 10 s so a busy node is not voted out (a SIGKILLed node's closed sockets
        # are still noticed at once)
        NODE_SETTINGS=("cluster.name=$CLUSTER_NAME" "node.name=node-$n" "discovery.type=multi-node"
                       "discovery.seed_hosts=$seeds" "cluster.initial_master_nodes=node-1"
                       "cluster.fault_detection.leader_check.timeout=30s"
                       "cluster.fault_detection.follower_check.timeout=30s")
        set -- "$cmd"
        # shellcheck source=../lib/jvm-node.sh
        source "$HERE/../lib/jvm-node.sh"
    )
}

check_n() { [[ "${1:-}" =~ ^[1-9][0-9]*$ ]] && (( $1 <= NODES )) || { echo "es-cluster.sh: node must be 1..$NODES" >&2; exit 2; }; }

case "${1:-}" in
    start)
        # one start at a time (CI starts the cluster in the background and the tests' fixture calls this again:
        # the second waits here, then finds every node running and healthy)
        lock_dir="${CORRTRACE_SERVICES_DIR:-$HERE/../../.services}/es-cluster"
        mkdir -p "$lock_dir"
        exec 8>"$lock_dir/start.lock"
        flock 8
        bash "$HERE/es.sh" build   # one build before the nodes start in parallel (they share the launcher jar)
        pids=()
        for ((n = 1; n <= NODES; n++)); do node "$n" start 8>&- & pids+=($!); done
        rc=0
        for p in "${pids[@]}"; do wait "$p" || rc=1; done
        exit $rc ;;
    stop)
        pids=()
        for ((n = 1; n <= NODES; n++)); do node "$n" stop & pids+=($!); done
        for p in "${pids[@]}"; do wait "$p" || true; done ;;
    status)
        rc=0
        for ((n = 1; n <= NODES; n++)); do node "$n" status || rc=1; done
        exit $rc ;;
    kill)
        check_n "${2:-}"
        pid_file="${CORRTRACE_SERVICES_DIR:-$HERE/../../.services}/es-cluster/node-$2/es.pid"
        if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null \
            && tr '\0' ' ' <"/proc/$(cat "$pid_file")/cmdline" | grep -q CorrtraceEsLauncher; then
            kill -KILL "$(cat "$pid_file")"
            echo "es-cluster.sh: node-$2 killed (SIGKILL, pid $(cat "$pid_file"))"
        else
            echo "es-cluster.sh: node-$2 is not running (no live launcher behind $pid_file): nothing killed" >&2
            exit 1
        fi ;;
    start-node)
        check_n "${2:-}"
        node "$2" start 1 ;;
    *) echo "usage: $0 {start|stop|status|kill N|start-node N}" >&2; exit 2 ;;
esac
