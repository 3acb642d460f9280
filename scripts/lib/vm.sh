# shellcheck shell=bash
# A cgroup v2 host for the compose stack: operators' hosts (current Debian, Ubuntu, RHEL) are cgroup
# v2 only, and this machine is v1. qemu under TCG (KVM here cannot boot a stock kernel) boots
# Debian's own kernel on a disk made from a Debian root with docker.io; its engine holds the images
# the compose stage built and answers on a forwarded port, so the host's docker CLI and Compose drive
# it as they drive any remote engine. Sourced by scripts/test-compose (after scripts/lib/docker.sh).
#
#   vm_kernel CACHE            Debian's current kernel package, downloaded and unpacked once per
#                              version under CACHE; sets VM_KERNEL (vmlinuz) and VM_MODULES
#   vm_disk DIR IMAGES...      DIR/disk.img (the root: bookworm-slim + docker.io with IMAGES loaded,
#                              the kernel's modules, an init that mounts cgroup2 and starts dockerd)
#                              and DIR/initrd (busybox + the modules to mount the root)
#   vm_start DIR PORTS...      boots it; each PORTS entry GUEST forwards 127.0.0.1:<free port> to the
#                              guest's GUEST; waits until its engine answers and exports
#                              VM_DOCKER_HOST; VM_PORT_<GUEST> holds each forwarded port
#   vm_engine_answers          true when the guest's engine answers within a minute
#   vm_console DIR             prints the guest's console (kernel warnings, engine errors, heartbeat)
#   vm_stop DIR                powers it off
#
# The guest's engine listens only inside the VM; qemu forwards it to 127.0.0.1 of this machine.

source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

vm_kernel() {
  local cache=$1 package version folder
  package=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$package" ] || { echo "vm: apt knows no linux-image-amd64 (apt-get update first)" >&2; return 1; }
  version=${package#linux-image-}
  folder="$cache/kernel-$version"
  if [ ! -f "$folder/ready" ]; then
    echo "vm: downloading $package"
    rm -rf "$cache"/kernel-* && mkdir -p "$folder/deb"
    (cd "$folder/deb" && apt-get download -q "$package" > /dev/null 2>&1) \
      || { echo "vm: apt-get download $package failed" >&2; return 1; }
    dpkg-deb -x "$folder"/deb/*.deb "$folder/root"
    depmod -b "$folder/root" "$version"
    rm -rf "$folder/deb"
    touch "$folder/ready"
  fi
  VM_KERNEL="$folder/root/boot/vmlinuz-$version"
  VM_MODULES="$folder/root/lib/modules/$version"
  VM_KERNEL_ROOT="$folder/root"
  VM_KERNEL_VERSION=$version
}

# vm_initrd DIR: busybox (static) and the modules that mount the root disk (virtio-blk, ext4), and
# an init that mounts it and switches to it.
vm_initrd() {
  local dir=$1 initrd="$dir/initrd.d" module
  rm -rf "$initrd" && mkdir -p "$initrd/bin" "$initrd/modules"
  cp /bin/busybox "$initrd/bin/busybox"
  modprobe -d "$VM_KERNEL_ROOT" -S "$VM_KERNEL_VERSION" --show-depends -a virtio_pci virtio_blk ext4 \
    | awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' > "$dir/initrd.modules"
  while read -r module; do
    cp "$module" "$initrd/modules/"
    basename "$module" >> "$initrd/modules/order"
  done < "$dir/initrd.modules"
  cat > "$initrd/init" <<'SH'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in $(cat /modules/order); do insmod "/modules/$module"; done
for _ in $(seq 1 50); do [ -b /dev/vda ] && break; sleep 0.1; done
mount -t ext4 /dev/vda /root || { echo "ferry-vm: cannot mount the root disk"; poweroff -f; }
umount /proc /sys /dev
exec switch_root /root /sbin/ferry-vm-init
SH
  chmod 755 "$initrd/init"
  (cd "$initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$dir/initrd"
  rm -rf "$initrd"
}

vm_disk() {
  local dir=$1 root container
  shift
  mkdir -p "$dir"
  vm_initrd "$dir"
  # The guest's system: Debian's docker.io (the engine operators install from Debian) on the same
  # base the images use, built and cached by the engine like any image.
  "$DOCKER" build -q -t ferry-test-vm-root - > /dev/null <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends docker.io iptables iproute2 kmod socat procps \
 && rm -rf /var/lib/apt/lists/*
DOCKERFILE
  root="$dir/root"
  rm -rf "$root" && mkdir -p "$root"
  container=$("$DOCKER" create ferry-test-vm-root)
  "$DOCKER" export "$container" | tar -x -C "$root"
  "$DOCKER" rm "$container" > /dev/null
  mkdir -p "$root/lib/modules"
  cp -a "$VM_MODULES" "$root/lib/modules/"
  # A bind mount in the compose file names a file of the checkout by its path on this machine; the
  # guest's engine finds it at the same path.
  mkdir -p "$root$PWD/Dockerfiles"
  cp Dockerfiles/rabbitmq.conf "$root$PWD/Dockerfiles/"
  cat > "$root/sbin/ferry-vm-init" <<'SH'
#!/bin/sh
# PID 1 of the cgroup v2 test VM: the file systems a host has, cgroup2 only (as systemd mounts it),
# the network qemu gives, dockerd, the images, and the engine's socket on TCP port 2375.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname ferry-vm
say() { echo "ferry-vm: $* (at $(cut -d' ' -f1 /proc/uptime) s)"; }
modprobe -a virtio_net overlay bridge veth br_netfilter nf_tables nft_compat nft_chain_nat xt_conntrack xt_MASQUERADE xt_addrtype iptable_nat iptable_filter 2>&1
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
dockerd --data-root /var/lib/docker -H unix:///run/docker.sock > /var/log/dockerd.log 2>&1 &
for _ in $(seq 1 300); do docker info > /dev/null 2>&1 && break; sleep 1; done
docker info > /dev/null 2>&1 || { say "dockerd did not start"; tail -n 30 /var/log/dockerd.log; poweroff -f; }
say "engine ready on cgroup2 with $(cat /sys/fs/cgroup/cgroup.controllers)"
docker image ls --format '{{.Repository}}:{{.Tag}}' | sed 's/^/ferry-vm: image /'
# -t: after the client closes its side (docker exec without input), the engine's answer still comes.
socat -t 600 TCP-LISTEN:2375,fork,reuseaddr UNIX-CONNECT:/run/docker.sock &
say "listening"
# What the host shows when the engine stops answering (vm_console): the engine's warnings and
# errors as they happen, and a heartbeat that tells a frozen guest from a stuck engine.
tail -n 0 -F /var/log/dockerd.log 2>/dev/null | grep --line-buffered -E 'level=(warning|error|fatal)' | sed -u 's/^/ferry-vm: dockerd: /' &
while true; do
  sleep 60
  say "alive, load $(cut -d' ' -f1-3 /proc/loadavg), $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo) MiB available"
  # What a container start waits on when it hangs: a process stuck in the kernel (state D), or one
  # of the engine's helpers (runc, iptables, modprobe) running for over a minute.
  ps -eo stat=,etimes=,pid=,args= | awk '$1 ~ /^D/ || ($2 > 60 && $4 ~ /(runc|iptables|ip6tables|modprobe)$/) { $1 = $1; print "ferry-vm: waiting: " $0 }' | head -n 20
done
SH
  chmod 755 "$root/sbin/ferry-vm-init"
  vm_load_images "$dir" "$root/var/lib/docker" "$@"
  rm -f "$dir/disk.img"
  # Room for the images unpacked, the jobs' volumes and the environments; the file is sparse.
  mkfs.ext4 -q -F -L ferry-vm -d "$root" "$dir/disk.img" 16G
  rm -rf "$root"
}

# vm_load_images DIR DATA IMAGES...: the guest's engine data (DATA, its /var/lib/docker) with
# IMAGES in it, loaded here by a second dockerd of the same version: loading them in the guest,
# under emulation, takes several minutes. That engine has no network and no containers.
vm_load_images() {
  local dir=$1 data=$2 socket="$1/load.sock"
  shift 2
  mkdir -p "$data" "$dir/load-exec"
  echo '{}' > "$dir/load.json"
  # Its own network namespace: it touches none of this machine's interfaces (the other engine's docker0).
  unshare --net dockerd --config-file "$dir/load.json" --data-root "$data" --exec-root "$dir/load-exec" -H "unix://$socket" \
    --pidfile "$dir/load.pid" --bridge=none --iptables=false --ip6tables=false > "$dir/load.log" 2>&1 < /dev/null &
  process_wait_until "vm: the loading engine" "$dir/load.log" 30 env DOCKER_HOST="unix://$socket" "$DOCKER" info
  "$DOCKER" save "$@" | DOCKER_HOST="unix://$socket" "$DOCKER" load -q | sed 's/^/vm: /'
  process_stop "$(cat "$dir/load.pid")"
  # What the engine keeps only while it runs.
  rm -rf "$dir/load-exec" "$dir/load.sock" "$data/network" "$data/containerd"
}

vm_start() {
  local dir=$1 forwards="" guest port docker_port waited=0
  shift
  docker_port=$(free_port)
  forwards="hostfwd=tcp:127.0.0.1:$docker_port-:2375"
  for guest in "$@"; do
    port=$(free_port)
    forwards="$forwards,hostfwd=tcp:127.0.0.1:$port-:$guest"
    export "VM_PORT_$guest=$port"
  done
  rm -f "$dir/console.log" "$dir/qemu.pid" "$dir/qmp.sock"
  # The guest writes the stack's layers and volumes into the sparse disk file: a host that runs out
  # of room shows as I/O errors on the guest's console (werror=report), not as a VM that qemu
  # pauses without a word (its default).
  echo "vm: $(df -h --output=avail "$dir" | tail -n 1 | tr -d ' ') free on the host for the VM's disk"
  # Two virtual CPUs (one host thread each under multi-threaded TCG) and 6 GiB, as a small host.
  qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 6144 -nographic -no-reboot \
    -kernel "$VM_KERNEL" -initrd "$dir/initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4" \
    -drive "file=$dir/disk.img,if=virtio,format=raw,werror=report,rerror=report" \
    -qmp "unix:$dir/qmp.sock,server=on,wait=off" \
    -netdev "user,id=net0,$forwards" -device virtio-net-pci,netdev=net0 \
    -serial "file:$dir/console.log" -monitor none -display none \
    -pidfile "$dir/qemu.pid" > "$dir/qemu.log" 2>&1 < /dev/null &
  until grep -aq "ferry-vm: listening" "$dir/console.log" 2>/dev/null; do
    waited=$((waited + 1))
    if [ "$waited" -gt 300 ] || ! kill -0 "$(cat "$dir/qemu.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
      echo "vm: the engine in the VM did not come up; its console:" >&2
      tail -n 40 "$dir/console.log" "$dir/qemu.log" >&2
      return 1
    fi
    sleep 1
  done
  grep -ao "ferry-vm: .*" "$dir/console.log" | sed 's/^/vm: /'
  export VM_DOCKER_HOST="tcp://127.0.0.1:$docker_port"
}

# vm_engine_answers: true when the guest's engine answers within a minute (a guest that froze under
# emulation takes the connection through qemu and never answers).
vm_engine_answers() {
  DOCKER_HOST=$VM_DOCKER_HOST timeout 60 "$DOCKER" info > /dev/null 2>&1
}

# vm_console DIR: the guest's last words (its kernel's warnings, the engine's errors, the heartbeat)
# and qemu's.
vm_console() {
  local dir=$1
  echo "vm: the VM's console (last lines):"
  grep -av "^ferry-vm: image " "$dir/console.log" 2>/dev/null | tail -n 60 | sed 's/^/vm: | /'
  [ -s "$dir/qemu.log" ] && sed 's/^/vm: qemu: /' "$dir/qemu.log"
  # Whether qemu runs the guest or paused it (and why), from its QMP socket.
  [ -S "$dir/qmp.sock" ] && python3 - "$dir/qmp.sock" <<'PY' 2>&1 | sed 's/^/vm: qemu: /'
import json, socket, sys
with socket.socket(socket.AF_UNIX) as qmp:
    qmp.settimeout(5)
    try:
        qmp.connect(sys.argv[1])
        lines = qmp.makefile("rw")
        lines.readline()
        for command in ("qmp_capabilities", "query-status"):
            lines.write(json.dumps({"execute": command}) + "\n")
            lines.flush()
            answer = {}
            while "return" not in answer and "error" not in answer:  # events come in between
                answer = json.loads(lines.readline())
        status = answer.get("return", {})
        print(f"status {status.get('status')}, running {status.get('running')}")
    except (OSError, ValueError) as error:
        print(f"no answer on its QMP socket ({error})")
PY
  return 0
}

vm_stop() {
  local dir=$1
  [ -f "$dir/qemu.pid" ] || return 0
  process_stop "$(cat "$dir/qemu.pid")" 10
}
