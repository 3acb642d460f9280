# shellcheck shell=bash
# A private RabbitMQ node: its own data folder, every port on 127.0.0.1 (AMQP listener, management,
# epmd and Erlang distribution). Sourced by scripts/test and scripts/run.
#
#   broker_start DIR AMQP_PORT [USER PASSWORD_FILE]
#                                starts the node (or reuses the one already running in DIR) and waits
#                                until it is ready; with USER, that account (password read from the
#                                file, never put on a command line) is the node's only one: guest is removed
#   broker_stop DIR              stops the node started in DIR and its epmd
#   broker_ctl DIR ARGS...       runs rabbitmqctl against that node

RABBITMQ_BIN=/usr/lib/rabbitmq/bin

# broker_env DIR: the environment that points RabbitMQ's scripts at the node in DIR.
broker_env() {
  local dir=$1 port
  port=$(cat "$dir/amqp-port")
  export HOME="$dir"                                   # the Erlang cookie lives in $HOME
  export RABBITMQ_NODENAME="ferry$port@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT=$((port + 20000))
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$((port - 1000))
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"       # not into whatever folder rabbitmqctl runs in
  export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

broker_ctl() {
  local dir=$1; shift
  (broker_env "$dir" && "$RABBITMQ_BIN/rabbitmqctl" "$@")
}

# broker_write_config DIR PORT [USER PASSWORD_FILE]: rabbitmq.conf and plugins for a loopback-only
# node; with USER, a fresh node creates that account instead of guest (the file is the owner's only).
broker_write_config() {
  local dir=$1 port=$2 user=${3:-} password_file=${4:-}
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "$port" > "$dir/amqp-port"
  (umask 077; : > "$dir/rabbitmq.conf")
  if [ -n "$user" ]; then
    printf 'default_user = %s\ndefault_pass = %s\n' "$user" "$(cat "$password_file")" >> "$dir/rabbitmq.conf"
  fi
  cat >> "$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
management.tcp.ip = 127.0.0.1
management.tcp.port = $((port + 10000))
# Jobs keep their delivery unacknowledged while they run: allow a week (the longest wall time is below it).
consumer_timeout = 604800000
collect_statistics_interval = 1000
log.console = false
log.file.level = warning
CONF
  echo "[rabbitmq_management]." > "$dir/enabled_plugins"
}

broker_start() {
  local dir=$1 port=$2 user=${3:-} password_file=${4:-}
  mkdir -p "$dir"
  broker_write_config "$dir" "$port" "$user" "$password_file"
  if broker_ctl "$dir" status >/dev/null 2>&1; then
    echo "broker: reusing the node already running in $dir"
    return 0
  fi
  echo "broker: starting RabbitMQ on 127.0.0.1:$port (data in $dir)"
  (broker_env "$dir" && "$RABBITMQ_BIN/rabbitmq-server" -detached) > "$dir/log/start.out" 2>&1
  local waited=0
  until broker_ctl "$dir" await_startup --timeout 5 >/dev/null 2>&1; do
    waited=$((waited + 1))
    if [ "$waited" -ge 30 ]; then
      echo "broker: RabbitMQ did not start within about 150 s; its logs are in $dir/log" >&2
      tail -n 20 "$dir"/log/*.log "$dir/log/start.out" >&2 2>/dev/null
      return 1
    fi
    sleep 1
  done
  if [ -n "$user" ]; then broker_ensure_account "$dir" "$user" "$password_file"; fi
  echo "broker: ready"
}

# broker_ensure_account DIR USER PASSWORD_FILE: a node made before it had an account of its own
# (with guest) gets USER with the password from the file, and guest goes. Through the management
# API with curl reading its credentials and the body from files, so no password is on a command line.
broker_ensure_account() {
  local dir=$1 user=$2 password_file=$3 api
  api="http://127.0.0.1:$(( $(cat "$dir/amqp-port") + 10000 ))/api"
  local config="$dir/.curl-user" body="$dir/.curl-body"
  (umask 077; printf 'user = "%s:%s"\n' "$user" "$(cat "$password_file")" > "$config")
  if curl -fsS -o /dev/null -K "$config" "$api/whoami" 2>/dev/null; then
    rm -f "$config"
    curl -fsS -o /dev/null -u guest:guest -X DELETE "$api/users/guest" 2>/dev/null || true
    return 0
  fi
  (umask 077; printf '{"password":"%s","tags":"administrator"}' "$(cat "$password_file")" > "$body")
  curl -fsS -o /dev/null -u guest:guest -X PUT -H 'content-type: application/json' --data-binary "@$body" "$api/users/$user" \
    && curl -fsS -o /dev/null -u guest:guest -X PUT -H 'content-type: application/json' \
         --data '{"configure":".*","write":".*","read":".*"}' "$api/permissions/%2F/$user" \
    && curl -fsS -o /dev/null -K "$config" -X DELETE "$api/users/guest" \
    || echo "broker: could not give the node its own account; check $dir/log" >&2
  rm -f "$config" "$body"
}

broker_stop() {
  local dir=$1
  [ -f "$dir/amqp-port" ] || return 0
  # With the pid file, rabbitmqctl waits until the Erlang VM has exited.
  broker_ctl "$dir" stop "$dir/rabbitmq.pid" >/dev/null 2>&1 || true
  # A node that did not answer is killed; its command line names its private home folder.
  pkill -KILL -f -- "-home $dir " 2>/dev/null || true
  # epmd was started for this node's private port; stop it too.
  (broker_env "$dir" && epmd -kill >/dev/null 2>&1) || true
}
