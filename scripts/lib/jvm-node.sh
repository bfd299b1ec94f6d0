# shellcheck shell=bash
# One single-node search server (Elasticsearch or OpenSearch) built from Maven Central jars and run in the
# background for corrtrace's tests and demo: build, start (wait for yellow), stop, status.
# Sourced by scripts/elasticsearch/es.sh and scripts/opensearch/os.sh, which set NODE_DIR NODE_NAME SHORT
# PRODUCT PREFIX MAIN_CLASS DEFAULT_PORT DEFAULT_TRANSPORT_PORT DEFAULT_HEAP MIN_HEAP_MB, and by
# scripts/elasticsearch/es-cluster.sh, which also sets NODE_SETTINGS (extra key=value node settings) per node.

SERVICES_DIR="${CORRTRACE_SERVICES_DIR:-$NODE_DIR/../../.services}"
mkdir -p "$SERVICES_DIR"
SERVICES_DIR="$(cd "$SERVICES_DIR" && pwd)"
WORK="$SERVICES_DIR/$NODE_NAME"
PID_FILE="$WORK/$SHORT.pid"
PORT_FILE="$WORK/$SHORT.port"
LOG_FILE="$WORK/$SHORT.log"
BUILD_LOG="$WORK/build.log"
DATA_DIR="$WORK/data"
HOME_DIR="$WORK/home"
TARGET="$NODE_DIR/target"
JAR="$TARGET/corrtrace-$SHORT-launcher.jar"
CP_FILE="$TARGET/classpath.txt"

# the user-facing variables carry the node's prefix (ES_PORT, OS_PORT, ...); read them once here
env_or() { local name="${PREFIX}_$1"; echo "${!name:-$2}"; }
PORT="$(env_or PORT "$DEFAULT_PORT")"
TRANSPORT_PORT="$(env_or TRANSPORT_PORT "$DEFAULT_TRANSPORT_PORT")"
HEAP="$(env_or HEAP "$DEFAULT_HEAP")"
START_TIMEOUT="$(env_or START_TIMEOUT 180)"
KEEP_DATA="$(env_or KEEP_DATA 0)"
JAVA_BIN="$(env_or JAVA "")"
EXTRA_JAVA_OPTS="$(env_or JAVA_OPTS "")"

log() { echo "$SHORT.sh: $*" >&2; }

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

current_port() { if [[ -f "$PORT_FILE" ]]; then cat "$PORT_FILE"; else echo "$PORT"; fi; }

find_java() {
    local j
    if [[ -n "$JAVA_BIN" ]]; then j="$JAVA_BIN"
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
    [[ -z "$(find "$NODE_DIR/pom.xml" "$NODE_DIR/src" -newer "$JAR" -print -quit)" ]] || return 1
    local jars f
    IFS=':' read -r -a jars <"$CP_FILE"
    for f in "${jars[@]}"; do [[ -f "$f" ]] || return 1; done   # ~/.m2 may have been wiped
}

build() {
    build_is_fresh && return 0
    command -v mvn >/dev/null 2>&1 || { log "mvn not found; install Maven"; exit 1; }
    mkdir -p "$WORK"
    log "building launcher and resolving $PRODUCT jars from Maven Central (the first run downloads ~85 MB into ~/.m2)..."
    local t0=$SECONDS
    if ! mvn -B -q -f "$NODE_DIR/pom.xml" package >"$BUILD_LOG" 2>&1; then
        tail -n 60 "$BUILD_LOG" >&2
        log "maven build failed (full log: $BUILD_LOG)"
        exit 1
    fi
    touch "$JAR"
    log "build done in $((SECONDS - t0)) s"
}

wait_healthy() { # pid port
    local pid="$1" port="$2" deadline=$((SECONDS + START_TIMEOUT))
    while (( SECONDS < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$PRODUCT exited during startup; last log lines:"
            tail -n 60 "$LOG_FILE" >&2
            return 1
        fi
        if http_ok "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=2s"; then
            return 0
        fi
        sleep 0.5
    done
    log "$PRODUCT not healthy after ${START_TIMEOUT}s; last log lines:"
    tail -n 60 "$LOG_FILE" >&2
    return 1
}

do_start() {
    mkdir -p "$WORK"
    exec 9>"$WORK/$SHORT.lock"
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
    if http_ok "http://127.0.0.1:$PORT/"; then
        log "port $PORT is already served by another process (not started by this script); set ${PREFIX}_PORT"
        return 1
    fi
    build
    local java; java="$(find_java)"
    if [[ "$KEEP_DATA" != "1" ]]; then rm -rf "$DATA_DIR"; fi
    rm -rf "$WORK/tmp"
    mkdir -p "$DATA_DIR" "$HOME_DIR" "$WORK/tmp" "$WORK/logs"
    local xms="${MIN_HEAP_MB}m"
    [[ "$HEAP" =~ ^([0-9]+)m$ ]] && (( BASH_REMATCH[1] < MIN_HEAP_MB )) && xms="$HEAP"
    # shellcheck disable=SC2086
    nohup "$java" -Xms"$xms" -Xmx"$HEAP" -XX:+UseG1GC \
        -Djava.io.tmpdir="$WORK/tmp" -Dfile.encoding=UTF-8 -Djava.locale.providers=SPI,CLDR \
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0 \
        ${EXTRA_JAVA_OPTS} \
        -cp "$JAR:$(cat "$CP_FILE")" "$MAIN_CLASS" \
        "path.home=$HOME_DIR" "path.data=$DATA_DIR" "path.logs=$WORK/logs" \
        "http.port=$PORT" "transport.port=$TRANSPORT_PORT" ${NODE_SETTINGS[@]+"${NODE_SETTINGS[@]}"} \
        >"$LOG_FILE" 2>&1 </dev/null 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$PORT" >"$PORT_FILE"
    local t0=$SECONDS
    if wait_healthy "$pid" "$PORT"; then
        log "started (pid $pid, http://127.0.0.1:$PORT) in $((SECONDS - t0)) s; log: $LOG_FILE"
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
        echo "$NODE_NAME: not running"
        return 3
    fi
    port="$(current_port)"
    if http_ok "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=1s"; then
        echo "$NODE_NAME: running (pid $pid, http://127.0.0.1:$port, log $LOG_FILE)"
        return 0
    fi
    echo "$NODE_NAME: pid $pid alive but not healthy on port $port (log $LOG_FILE)"
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
