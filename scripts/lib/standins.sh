# shellcheck shell=bash
# Stand-ins for the base images Ferry's Dockerfile and compose file name, for machines that reach no
# image registry (this one reaches only Debian's mirror and PyPI). Operators' builds use the official
# images; the test builds these under the same names, from Debian's packages and the Swift toolchain
# on the machine:
#   debian:bookworm-slim       debootstrap's minbase, plus the machine's extra CA certificates
#                              (HTTPS here passes a TLS-intercepting proxy) and SSL_CERT_FILE
#   swift:6.3-bookworm         that base with the packages Swift needs, /opt/swift's toolchain and the
#                              package mirror in /opt/swift-packages (git reads github.com from it)
#   rabbitmq:3.13-management   that base with Debian's rabbitmq-server (3.10) and its management
#                              plugin; RABBITMQ_DEFAULT_USER/PASS become its only account
# Each image is saved under CACHE, keyed by what it is made of, and loaded from there next time.
# Sourced by scripts/test-compose (after scripts/lib/docker.sh).
#
#   standins_build CACHE

STANDIN_MIRROR=${STANDIN_MIRROR:-http://deb.debian.org/debian}
STANDIN_SWIFT_PACKAGES="binutils git gnupg2 libc6-dev libcurl4-openssl-dev libedit2 libgcc-12-dev libpython3-dev libsqlite3-0 libstdc++-12-dev libxml2-dev libncurses-dev libz3-dev pkg-config tzdata zlib1g-dev unzip"

# standin_key NAME: a hash of what the image is made of.
standin_key() {
  local name=$1
  {
    echo "$name"
    sed -n '/^# standin inputs begin/,/^# standin inputs end/p' "${BASH_SOURCE[0]}"
    echo "$STANDIN_MIRROR $STANDIN_SWIFT_PACKAGES"
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
    if [ "$name" = swift ]; then
      /opt/swift/usr/bin/swift --version 2>/dev/null
      git -C /opt/swift-packages log -1 --format=%H 2>/dev/null || ls -R /opt/swift-packages | sha256sum
    fi
  } | sha256sum | cut -c1-16
}

# standin_load_or_build NAME TAG CACHE BUILDER: loads TAG from CACHE/NAME-KEY.tar, or runs BUILDER
# and saves the image there (older tars of NAME are removed).
standin_load_or_build() {
  local name=$1 tag=$2 cache=$3 builder=$4 key tar
  key=$(standin_key "$name")
  tar="$cache/$name-$key.tar"
  if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "ferry.standin"}}' "$tag" 2>/dev/null)" = "$key" ]; then
    echo "stand-in: $tag is current"
    return
  fi
  if [ -s "$tar" ]; then
    echo "stand-in: $tag from the cache ($tar)"
    "$DOCKER" load -q -i "$tar" > /dev/null
    return
  fi
  echo "stand-in: building $tag"
  STANDIN_LABEL=$key "$builder" "$tag"
  mkdir -p "$cache"
  rm -f "$cache/$name"-*.tar
  "$DOCKER" save -o "$tar.partial" "$tag" && mv "$tar.partial" "$tar"
}

# standin inputs begin
standin_build_slim() {
  local tag=$1 root
  root=$(mktemp -d "${TMPDIR:-/tmp}/ferry-standin-slim.XXXXXX")
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$STANDIN_MIRROR" > "$root.log" 2>&1 \
    || { tail -n 20 "$root.log" >&2; return 1; }
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates > /dev/null 2>&1
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
  tar -C "$root" -c . | "$DOCKER" import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["bash"]' \
    --change "LABEL ferry.standin=$STANDIN_LABEL" - "$tag" > /dev/null
  rm -rf "$root" "$root.log"
}

standin_build_swift() {
  local tag=$1 context
  context=$(mktemp -d "${TMPDIR:-/tmp}/ferry-standin-swift.XXXXXX")
  # The toolchain and the mirror are hard links into the build context, not copies.
  mkdir -p "$context/opt"
  cp -al /opt/swift "$context/opt/swift"
  cp -al /opt/swift-packages "$context/opt/swift-packages"
  cat > "$context/Dockerfile" <<DOCKERFILE
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends $STANDIN_SWIFT_PACKAGES && rm -rf /var/lib/apt/lists/*
COPY opt/swift/usr/ /usr/
COPY opt/swift-packages/ /opt/swift-packages/
RUN git config --system url./opt/swift-packages/.insteadOf https://github.com/ \
 && git config --system --add safe.directory '*'
DOCKERFILE
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --label "ferry.standin=$STANDIN_LABEL" -t "$tag" "$context" > /dev/null
  rm -rf "$context"
}

standin_build_rabbitmq() {
  local tag=$1 context
  context=$(mktemp -d "${TMPDIR:-/tmp}/ferry-standin-rabbitmq.XXXXXX")
  cat > "$context/entrypoint" <<'SH'
#!/bin/sh
# The official image's contract: RABBITMQ_DEFAULT_USER/PASS make the account, conf.d is read.
set -e
if [ -n "$RABBITMQ_DEFAULT_USER" ]; then
  printf 'default_user = %s\ndefault_pass = %s\nloopback_users = none\n' "$RABBITMQ_DEFAULT_USER" "$RABBITMQ_DEFAULT_PASS" > /etc/rabbitmq/conf.d/10-defaults.conf
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq rabbitmq-server
SH
  cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends rabbitmq-server util-linux && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins enable --offline rabbitmq_management \
 && mkdir -p /etc/rabbitmq/conf.d && chmod 777 /etc/rabbitmq/conf.d
ENV RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d
COPY entrypoint /usr/local/bin/standin-entrypoint
RUN chmod 755 /usr/local/bin/standin-entrypoint
EXPOSE 5672 15672
ENTRYPOINT ["/usr/local/bin/standin-entrypoint"]
DOCKERFILE
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --label "ferry.standin=$STANDIN_LABEL" -t "$tag" "$context" > /dev/null
  rm -rf "$context"
}
# standin inputs end

standins_build() {
  local cache=$1
  # The other two are built on the slim one; their keys cover its recipe too.
  standin_load_or_build slim debian:bookworm-slim "$cache" standin_build_slim
  standin_load_or_build swift swift:6.3-bookworm "$cache" standin_build_swift
  standin_load_or_build rabbitmq rabbitmq:3.13-management "$cache" standin_build_rabbitmq
}
