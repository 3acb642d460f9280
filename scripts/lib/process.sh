# shellcheck shell=bash
# Background processes of the test stages (engines, VMs, the Slurm cluster's daemons): wait until
# one answers, stop one, find a free port. Sourced by scripts/lib/docker.sh, vm.sh and slurm.sh.
#
#   process_wait_until WHAT LOG SECONDS CHECK...   runs CHECK every half second until it succeeds;
#                                                  after SECONDS says WHAT did not start, with LOG's tail
#   process_stop PID [SECONDS]                     SIGTERM, then SIGKILL if it still runs after SECONDS (30)
#   free_port                                      a TCP port free on 127.0.0.1

process_wait_until() {
  local what=$1 log=$2 seconds=$3 waited=0
  shift 3
  until "$@" > /dev/null 2>&1; do
    waited=$((waited + 1))
    if [ "$waited" -gt $((seconds * 2)) ]; then
      echo "$what did not start within $seconds s; its log:" >&2
      tail -n 20 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
}

process_stop() {
  local pid=$1 seconds=${2:-30}
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 $((seconds * 2))); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
