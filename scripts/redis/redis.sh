#!/usr/bin/env bash
# Start/stop a real Redis server (Debian's redis-server) for the Celery tests: the broker and result backend.
#
#   redis.sh start    install redis-server with apt-get when missing (saying so), start it, wait for PING
#   redis.sh stop     stop the server this script started
#   redis.sh status   exit 0 if it answers PING
#
# Environment:
#   REDIS_PORT              port on 127.0.0.1 (default 6379)
#   CORRTRACE_SERVICES_DIR  work dir (default <repo>/.services); files go to $dir/redis-$REDIS_PORT/
# Nothing is persisted: no RDB snapshots, no append-only file.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${REDIS_PORT:-6379}"
DIR="${CORRTRACE_SERVICES_DIR:-$root/.services}/redis-$PORT"
PIDFILE="$DIR/redis.pid"

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

install() { bash "$root/scripts/lib/apt-install.sh" redis-server; }

start() {
  install
  if command -v redis-cli >/dev/null && ping; then echo "redis: already running on 127.0.0.1:$PORT"; return 0; fi
  mkdir -p "$DIR"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PIDFILE" --dir "$DIR" \
    --logfile "$DIR/redis.log" --save "" --appendonly no --protected-mode yes
  for _ in $(seq 1 100); do
    if ping; then echo "redis: up on 127.0.0.1:$PORT"; return 0; fi
    sleep 0.1
  done
  echo "redis: did not start; log:" >&2; tail -20 "$DIR/redis.log" >&2; return 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
  fi
  echo "redis: stopped"
}

status() {
  if command -v redis-cli >/dev/null && ping; then echo "redis: up on 127.0.0.1:$PORT"; return 0; fi
  echo "redis: down"; return 3
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: redis.sh start|stop|status" >&2; exit 2 ;;
esac
