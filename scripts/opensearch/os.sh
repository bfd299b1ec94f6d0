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

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICES_DIR="${CORRTRACE_SERVICES_DIR:-$SCRIPT_DIR/../../.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
WORK="$SERVICES_DIR/opensearch"
PID_FILE="$WORK/os.pid"
PORT_FILE="$WORK/os.port"
LOG_FILE="$WORK/os.log"
BUILD_LOG="$WORK/build.log"
DATA_DIR="$WORK/data"
HOME_DIR="$WORK/home"
TARGET="$SCRIPT_DIR/target"
JAR="$TARGET/corrtrace-os-launcher.jar"
CP_FILE="$TARGET/classpath.txt"
MAIN_CLASS="org.opensearch.node.CorrtraceOsLauncher"

OS_PORT="${OS_PORT:-9201}"
OS_TRANSPORT_PORT="${OS_TRANSPORT_PORT:-9400-9499}"
OS_HEAP="${OS_HEAP:-512m}"
OS_START_TIMEOUT="${OS_START_TIMEOUT:-180}"

log() { echo "os.sh: $*" >&2; }

http_ok() { # url -> exit 0 on HTTP 2xx
    if command -v curl >/dev/null 2>&1; then
        curl -sf -o /dev/null --max-time 5 "$1"
    else
        python3 -c 'import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$1" >/dev/null 2>&1
    fi
}

running_pid() { # prints the pid of our node if it is alive
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    # guard against pid reuse: the process must be our launcher
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$MAIN_CLASS" || return 1
    echo "$pid"
}

current_port() { if [[ -f "$PORT_FILE" ]]; then cat "$PORT_FILE"; else echo "$OS_PORT"; fi; }

find_java() {
    local j
    if [[ -n "${OS_JAVA:-}" ]]; then j="$OS_JAVA"
    elif [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then j="$JAVA_HOME/bin/java"
    else j="$(command -v java || true)"; fi
    [[ -n "$j" ]] || { log "no java found (need Java >= 17)"; exit 1; }
    local v
    v="$("$j" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
    if [[ -z "$v" || "${v%%.*}" -lt 17 ]]; then log "$j is Java '$v'; Java >= 17 is required"; exit 1; fi
    echo "$j"
}

build_is_fresh() {
    [[ -f "$JAR" && -f "$CP_FILE" ]] || return 1
    [[ -z "$(find "$SCRIPT_DIR/pom.xml" "$SCRIPT_DIR/src" -newer "$JAR" -print -quit)" ]] || return 1
    local jars f
    IFS=':' read -r -a jars <"$CP_FILE"
    for f in "${jars[@]}"; do [[ -f "$f" ]] || return 1; done   # ~/.m2 may have been wiped
}

build() {
    build_is_fresh && return 0
    command -v mvn >/dev/null 2>&1 || { log "mvn not found; install Maven"; exit 1; }
    mkdir -p "$WORK"
    log "building launcher and resolving OpenSearch jars from Maven Central (the first run downloads ~85 MB into ~/.m2)..."
    local t0=$SECONDS
    if ! mvn -B -q -f "$SCRIPT_DIR/pom.xml" package >"$BUILD_LOG" 2>&1; then
        tail -n 60 "$BUILD_LOG" >&2
        log "maven build failed (full log: $BUILD_LOG)"
        exit 1
    fi
    touch "$JAR"
    log "build done in $((SECONDS - t0)) s"
}

wait_healthy() { # pid port
    local pid="$1" port="$2" deadline=$((SECONDS + OS_START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "OpenSearch exited during startup; last log lines:"
            tail -n 60 "$LOG_FILE" >&2
            return 1
        fi
        if http_ok "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=2s"; then
            return 0
        fi
        sleep 0.5
    done
    log "OpenSearch not healthy after ${OS_START_TIMEOUT}s; last log lines:"
    tail -n 60 "$LOG_FILE" >&2
    return 1
}

do_start() {
    mkdir -p "$WORK"
    exec 9>"$WORK/os.lock"
    flock 9
    local pid
    if pid="$(running_pid)"; then
        local port; port="$(current_port)"
        if wait_healthy "$pid" "$port"; then
            log "already running (pid $pid, http://127.0.0.1:$port)"
            return 0
        fi
        return 1
    fi
    rm -f "$PID_FILE"
    if http_ok "http://127.0.0.1:$OS_PORT/"; then
        log "port $OS_PORT is already served by another process (not started by this script); set OS_PORT"
        return 1
    fi
    build
    local java; java="$(find_java)"
    if [[ "${OS_KEEP_DATA:-0}" != "1" ]]; then rm -rf "$DATA_DIR"; fi
    rm -rf "$WORK/tmp"
    mkdir -p "$DATA_DIR" "$HOME_DIR" "$WORK/tmp" "$WORK/logs"
    local xms=256m
    [[ "$OS_HEAP" =~ ^([0-9]+)m$ ]] && (( BASH_REMATCH[1] < 256 )) && xms="$OS_HEAP"
    # shellcheck disable=SC2086
    nohup "$java" -Xms"$xms" -Xmx"$OS_HEAP" -XX:+UseG1GC \
        -Djava.io.tmpdir="$WORK/tmp" -Dfile.encoding=UTF-8 -Djava.locale.providers=SPI,CLDR \
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
        ${OS_JAVA_OPTS:-} \
        -cp "$JAR:$(cat "$CP_FILE")" "$MAIN_CLASS" \
        "path.home=$HOME_DIR" "path.data=$DATA_DIR" "path.logs=$WORK/logs" \
        "http.port=$OS_PORT" "transport.port=$OS_TRANSPORT_PORT" \
        >"$LOG_FILE" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$OS_PORT" >"$PORT_FILE"
    local t0=$SECONDS
    if wait_healthy "$pid" "$OS_PORT"; then
        log "started (pid $pid, http://127.0.0.1:$OS_PORT) in $((SECONDS - t0)) s; log: $LOG_FILE"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    return 1
}

do_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop in 30 s; killing"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

do_status() {
    local pid port
    if ! pid="$(running_pid)"; then
        echo "opensearch: not running"
        return 3
    fi
    port="$(current_port)"
    if http_ok "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=1s"; then
        echo "opensearch: running (pid $pid, http://127.0.0.1:$port, log $LOG_FILE)"
        return 0
    fi
    echo "opensearch: pid $pid alive but not healthy on port $port (log $LOG_FILE)"
    return 1
}

case "${1:-}" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    restart) do_stop; do_start ;;
    build) build; log "launcher ready: $JAR" ;;
    *) echo "usage: $0 {start|stop|status|restart|build}" >&2; exit 2 ;;
esac
