#!/usr/bin/env bash
# A real nginx (Debian's package, installed when missing) in front of one upstream, with corrtrace's snippets
# (deploy/nginx/): it gives each request a correlation ID, forwards it, and writes it in its access log.
# Runs as any user: its own prefix, config, pid, temp dirs and logs under $DIR; listens on 127.0.0.1 only.
#
#   nginx.sh install   install nginx with apt-get when missing (saying so)
#   nginx.sh start     install, write $DIR/nginx.conf, start nginx in the background, wait until it answers
#   nginx.sh run       the same config, nginx in the foreground (for a supervisor: the demo's --with-nginx)
#   nginx.sh stop      stop the nginx this script started here
#   nginx.sh status    exit 0 if it is running
#
# Environment:
#   NGINX_PORT          port on 127.0.0.1 (default 8088)
#   NGINX_UPSTREAM      host:port it proxies to (default 127.0.0.1:8000)
#   NGINX_DIR           prefix (default <repo>/.services/nginx-$NGINX_PORT)
#   NGINX_ACCESS_LOG    access log (default $NGINX_DIR/logs/access.log), in corrtrace's log_format
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
PORT="${NGINX_PORT:-8088}"
UPSTREAM="${NGINX_UPSTREAM:-127.0.0.1:8000}"
DIR="${NGINX_DIR:-${CORRTRACE_SERVICES_DIR:-$root/.services}/nginx-$PORT}"
ACCESS_LOG="${NGINX_ACCESS_LOG:-$DIR/logs/access.log}"
PIDFILE="$DIR/nginx.pid"

install() { bash "$root/scripts/lib/apt-install.sh" nginx; }

configure() {
  mkdir -p "$DIR/logs" "$DIR/temp" "$(dirname "$ACCESS_LOG")"
  cp "$root/deploy/nginx/corrtrace.conf" "$root/deploy/nginx/corrtrace-proxy.conf" "$DIR/"
  cat >"$DIR/nginx.conf" <<CONF
worker_processes 1;
pid $PIDFILE;
error_log $DIR/logs/error.log warn;
events { worker_connections 256; }
http {
    client_body_temp_path $DIR/temp/body;
    proxy_temp_path $DIR/temp/proxy;
    fastcgi_temp_path $DIR/temp/fastcgi;
    uwsgi_temp_path $DIR/temp/uwsgi;
    scgi_temp_path $DIR/temp/scgi;
    include $DIR/corrtrace.conf;
    access_log $ACCESS_LOG corrtrace;
    server {
        listen 127.0.0.1:$PORT;
        location / {
            proxy_pass http://$UPSTREAM;
            proxy_http_version 1.1;
            include $DIR/corrtrace-proxy.conf;
        }
    }
}
CONF
  nginx -t -q -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  install
  if running; then echo "nginx: already running on 127.0.0.1:$PORT"; return 0; fi
  configure
  nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log"
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
      echo "nginx: up on 127.0.0.1:$PORT -> $UPSTREAM (access log $ACCESS_LOG)"; return 0
    fi
    sleep 0.1
  done
  echo "nginx: did not start; log:" >&2; tail -20 "$DIR/logs/error.log" >&2; return 1
}

run() {
  install
  configure
  exec nginx -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log" -g "daemon off;"
}

stop() {
  if running; then
    pid="$(cat "$PIDFILE")"
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
  echo "nginx: stopped"
}

status() {
  if running; then echo "nginx: up on 127.0.0.1:$PORT"; return 0; fi
  echo "nginx: down"; return 3
}

case "${1:-status}" in
  install) install ;;
  start) start ;;
  run) run ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: nginx.sh install|start|run|stop|status" >&2; exit 2 ;;
esac
