#!/bin/bash
# The test suite on QGIS 3.40 LTR (Debian 13 "trixie": Python 3.13, NumPy 2, GDAL 3.10), in a
# chroot built with debootstrap and cached outside the repository.
#
#   scripts/qgis340.sh available   exit 0 when this machine can run it (else says why, exit 1)
#   scripts/qgis340.sh build       build the chroot unless a complete one is cached
#   scripts/qgis340.sh test        build if needed, then run the whole suite inside (PYTEST_ARGS=...)
#   scripts/qgis340.sh shell [CMD] a shell (or CMD) inside, the repository at /repo
#   scripts/qgis340.sh clean       delete every cached chroot
#
# Every run happens in a private mount namespace (unshare): the bind mounts (repository, /proc,
# /dev, /sys, resolv.conf, a scratch /tmp) vanish with the run even when it is killed, so a
# cached chroot never keeps a mount, and parallel runs from different checkouts never see each
# other's /repo.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$REPO/scripts/qgis340.sh"
SUITE=trixie
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${QGIS340_CACHE:-/var/cache/earth-embeddings}
# What the suite needs on top of minbase (the same set scripts/setup.sh checks on the host,
# plus what a minbase system lacks). Changing this list, or RECIPE, builds a new chroot.
PACKAGES="qgis python3-qgis qgis-providers python3-rasterio python3-pyproj python3-requests python3-venv
python3-gdal gdal-bin xvfb xauth make ca-certificates python3-sklearn python3-distributed python3-matplotlib"
RECIPE=1
HASH=$(printf '%s\n' "$SUITE" $PACKAGES "recipe=$RECIPE" | sha256sum | cut -c1-12)
ROOT="$CACHE/$SUITE-$HASH"
VENV_IN=/opt/earth-embeddings/venv # outside the repository: the repository's .venv is the host's
PATH_IN=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "qgis340: $*" >&2; }

remove_tree() {
    # rm -rf, refusing when anything is mounted below (a bind mount of the repository would
    # otherwise be deleted with it).
    local dir
    dir=$(realpath -m "$1")
    if awk -v d="$dir/" '{ if (index($5 "/", d) == 1) found = 1 } END { exit !found }' /proc/self/mountinfo; then
        say "not removing $dir: something is mounted below it"
        return 1
    fi
    rm -rf --one-file-system "$dir"
}

why_not() {
    # Prints nothing when the chroot can be used or built here, else the reason.
    if [ "$(uname -s)" != Linux ]; then
        echo "not Linux"
    elif [ "$(id -u)" != 0 ]; then
        echo "needs root (debootstrap, chroot and mounts)"
    elif ! command -v unshare >/dev/null || ! command -v chroot >/dev/null; then
        echo "unshare or chroot is missing (util-linux, coreutils)"
    elif ! unshare --mount --propagation private true 2>/dev/null; then
        echo "cannot make a mount namespace (a container without CAP_SYS_ADMIN?)"
    elif [ -f "$ROOT/.complete" ]; then
        :
    elif ! command -v debootstrap >/dev/null && ! command -v apt-get >/dev/null; then
        echo "debootstrap is not installed and there is no apt-get to install it"
    fi
}

# Mounts the chroot needs, inside the current (private) mount namespace.
mount_into() {
    local root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    if [ -L "$root/etc/resolv.conf" ] || [ ! -e "$root/etc/resolv.conf" ]; then
        rm -f "$root/etc/resolv.conf" && : >"$root/etc/resolv.conf" # a target to mount on
    fi
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    # The host's trust store (it may hold a proxy's CA that pip needs to reach PyPI).
    local bundle=/etc/ssl/certs/ca-certificates.crt
    if [ -f "$bundle" ] && [ -f "$root$bundle" ]; then
        mount --bind -o ro "$bundle" "$root$bundle"
    fi
}

in_root() {
    # Run a command in the chroot with a clean environment.
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH="$PATH_IN" HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

build() {
    [ -f "$ROOT/.complete" ] && return 0
    mkdir -p "$CACHE"
    exec 9>"$ROOT.lock"
    if ! flock -n 9; then
        say "another run is building $ROOT; waiting for it"
        flock 9
    fi
    [ -f "$ROOT/.complete" ] && return 0
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap"
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    fi
    local tmp="$ROOT.partial"
    if [ -e "$tmp" ]; then
        say "removing an interrupted build: $tmp"
        remove_tree "$tmp"
    fi
    if [ -e "$ROOT" ]; then remove_tree "$ROOT"; fi # a folder without .complete is never used
    local start=$SECONDS
    say "building Debian $SUITE with QGIS into $ROOT (a few minutes; cached afterwards)"
    mkdir -p "$tmp"
    # In a private mount namespace too: debootstrap mounts /proc and /sys in the target, and
    # an interrupted build must not leave them mounted.
    # shellcheck disable=SC2086
    unshare --mount --propagation private bash "$SELF" __install "$tmp" $PACKAGES || {
        say "building the chroot failed (log: $CACHE/$SUITE-$HASH.build.log)"
        return 1
    }
    touch "$tmp/.complete"
    mv "$tmp" "$ROOT"
    exec 9>&-
    say "built $ROOT in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
}

# Inside the namespace: debootstrap, then the packages with apt (which resolves them better
# than debootstrap's --include).
inner_install() {
    local root=$1 log="$CACHE/$SUITE-$HASH.build.log"
    shift
    debootstrap --variant=minbase --merged-usr "$SUITE" "$root" "$MIRROR" >"$log" 2>&1 || {
        tail -20 "$log" >&2
        return 1
    }
    # No services start in a chroot; dpkg need not fsync a throwaway system.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/unsafe-io"
    echo "deb $MIRROR $SUITE main" >"$root/etc/apt/sources.list"
    mount_into "$root"
    in_root "$root" apt-get update -q >>"$log" 2>&1
    in_root "$root" apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 || {
        tail -30 "$log" >&2
        return 1
    }
    in_root "$root" apt-get clean
}

# Inside the namespace: the repository at /repo, a scratch /tmp, then the command.
inner_run() {
    # global: the EXIT trap needs it
    scratch=$(mktemp -d /var/tmp/earth-embeddings-qgis340.XXXXXX)
    trap 'umount -R "$ROOT/repo" "$ROOT/tmp" 2>/dev/null; rm -rf --one-file-system "$scratch"' EXIT
    mount_into "$ROOT"
    mkdir -p "$ROOT/repo"
    mount --bind "$REPO" "$ROOT/repo"
    chmod 1777 "$scratch"
    mount --bind "$scratch" "$ROOT/tmp"
    chroot "$ROOT" /usr/bin/env -i PATH="$PATH_IN" HOME=/tmp/home LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        TERM="${TERM:-dumb}" QT_QPA_PLATFORM=offscreen PROJ_DATA=/usr/share/proj PYTHONDONTWRITEBYTECODE=1 \
        ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} \
        PIP_CACHE_DIR=/var/cache/pip PIP_ROOT_USER_ACTION=ignore VENV="$VENV_IN" \
        /bin/bash -c "mkdir -p \$HOME && cd /repo && $1"
}

# The suite inside: scripts/setup.sh makes the venv (once; serialised between parallel runs)
# and picks a faiss-cpu for this NumPy, then the same pytest as on the host. PYTEST_ARGS is
# pasted into the command line, as make does with it.
SUITE_CMD="flock /opt/earth-embeddings/setup.lock sh scripts/setup.sh && mkdir -p test-output &&
\"\$VENV/bin/pytest\" -p no:cacheprovider ${PYTEST_ARGS:-} tests"

case "${1:-test}" in
available)
    reason=$(why_not)
    if [ -n "$reason" ]; then
        say "cannot run the QGIS 3.40 suite here: $reason"
        exit 1
    fi
    ;;
build)
    reason=$(why_not)
    [ -z "$reason" ] || {
        say "$reason"
        exit 1
    }
    build
    ;;
test | shell)
    reason=$(why_not)
    [ -z "$reason" ] || {
        say "$reason"
        exit 1
    }
    build
    mkdir -p "$ROOT/opt/earth-embeddings"
    if [ "$1" = shell ]; then
        exec unshare --mount --propagation private bash "$SELF" __run "${2:-exec bash -i}"
    fi
    exec unshare --mount --propagation private bash "$SELF" __run "$SUITE_CMD"
    ;;
clean)
    for d in "$CACHE"/"$SUITE"-*; do
        [ -e "$d" ] || continue
        say "removing $d"
        remove_tree "$d"
    done
    ;;
__install)
    shift
    inner_install "$@"
    ;;
__run)
    inner_run "$2"
    ;;
*)
    echo "usage: $0 available|build|test|shell|clean" >&2
    exit 2
    ;;
esac
