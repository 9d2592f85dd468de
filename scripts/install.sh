#!/bin/sh
# skiff installer: installs the skiff binary, a service (systemd or OpenRC),
# skiff-killall.sh and skiff-uninstall.sh, then starts the service.
#
#   curl -sfL https://HOST/install.sh | sh -                       # a server
#   curl -sfL https://HOST/install.sh | SKIFF_URL=https://SERVER:6443 \
#        SKIFF_TOKEN=AGENT_TOKEN sh -                              # an agent
#   curl -sfL https://HOST/install.sh | sh -s - --node-ip 10.0.0.5 # extra flags
#
# Environment:
#   SKIFF_DOWNLOAD_URL        where skiff-<arch> and sha256sum.txt are downloaded from
#   SKIFF_URL, SKIFF_TOKEN    join a server as an agent (token kept in the env file, 0600):
#                             the agent token, `skiff token --agent` on a server (the
#                             server token works too, but joins servers as well)
#   SKIFF_TOKEN_FILE          instead of SKIFF_TOKEN: a file holding the token
#   SKIFF_NODE_NAME           passed as --node-name
#   INSTALL_SKIFF_EXEC        "[server|agent] FLAGS...": the command and extra flags
#   INSTALL_SKIFF_BINARY      install this local file instead of downloading
#   INSTALL_SKIFF_SHA256      expected sha256 of INSTALL_SKIFF_BINARY
#   INSTALL_SKIFF_SKIP_DOWNLOAD=true  keep the skiff already in the bin dir
#   INSTALL_SKIFF_SKIP_START=true     write files only; no systemctl/rc-service
#   INSTALL_SKIFF_SKIP_HOST_CHECK=true  skip the memory cgroup and iptables checks
#   INSTALL_SKIFF_INIT=systemd|openrc   force the init system (default: detect)
#   INSTALL_SKIFF_BIN_DIR (/usr/local/bin), INSTALL_SKIFF_SYSTEMD_DIR
#   (/etc/systemd/system), INSTALL_SKIFF_OPENRC_DIR (/etc/init.d),
#   INSTALL_SKIFF_OPENRC_CONF_DIR (../conf.d of the OpenRC dir), INSTALL_SKIFF_ETC_DIR
#   (/etc/skiff), INSTALL_SKIFF_DATA_DIR (/var/lib/skiff), INSTALL_SKIFF_POD_LOG_DIR
#   (/var/log/pods): where things go; non-default ones are passed to skiff as flags.
#
# Running it again with the same inputs changes nothing; changed inputs
# rewrite only what differs and restart the service only then.
#
# Everything runs from main(), called on the last line, so that a download
# cut short by the network runs nothing at all.

set -e
set -f # flags are split on blanks but never glob-expanded

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() {
    echo "[ERROR] $*" >&2
    exit 1
}

is_true() { [ "$1" = true ] || [ "$1" = 1 ] || [ "$1" = yes ]; }

# ---------------------------------------------------------------- settings

setup_env() {
    BIN_DIR=${INSTALL_SKIFF_BIN_DIR:-/usr/local/bin}
    SYSTEMD_DIR=${INSTALL_SKIFF_SYSTEMD_DIR:-/etc/systemd/system}
    OPENRC_DIR=${INSTALL_SKIFF_OPENRC_DIR:-/etc/init.d}
    OPENRC_CONF_DIR=${INSTALL_SKIFF_OPENRC_CONF_DIR:-$(dirname "$OPENRC_DIR")/conf.d}
    ETC_DIR=${INSTALL_SKIFF_ETC_DIR:-/etc/skiff}
    DATA_DIR=${INSTALL_SKIFF_DATA_DIR:-/var/lib/skiff}
    POD_LOG_DIR=${INSTALL_SKIFF_POD_LOG_DIR:-/var/log/pods}
    SKIP_START=${INSTALL_SKIFF_SKIP_START:-false}

    case "${INSTALL_SKIFF_INIT:-}" in
    systemd | openrc) INIT=$INSTALL_SKIFF_INIT ;;
    "")
        if [ -d /run/systemd/system ]; then
            INIT=systemd
        elif [ -x /sbin/openrc-run ]; then
            INIT=openrc
        else
            fatal "found neither systemd (/run/systemd/system) nor OpenRC (/sbin/openrc-run); set INSTALL_SKIFF_INIT=systemd or openrc"
        fi
        ;;
    *) fatal "INSTALL_SKIFF_INIT must be systemd or openrc, not '$INSTALL_SKIFF_INIT'" ;;
    esac

    # The command: an explicit first word of INSTALL_SKIFF_EXEC or of the
    # arguments wins; otherwise a server URL means "join as an agent".
    # shellcheck disable=SC2086 # word splitting of INSTALL_SKIFF_EXEC is the point
    set -- ${INSTALL_SKIFF_EXEC:-} "$@"
    case "${1:-}" in
    server | agent)
        MODE=$1
        shift
        ;;
    *)
        if [ -n "${SKIFF_URL:-}" ]; then MODE=agent; else MODE=server; fi
        ;;
    esac
    if [ "$MODE" = agent ]; then
        [ -n "${SKIFF_URL:-}" ] || fatal "an agent needs SKIFF_URL (https://SERVER:6443) and SKIFF_TOKEN"
        if [ -z "${SKIFF_TOKEN:-}" ] && [ -z "${SKIFF_TOKEN_FILE:-}" ]; then
            fatal "SKIFF_URL is set but SKIFF_TOKEN and SKIFF_TOKEN_FILE are not: on the server run 'sudo skiff token --agent' and pass it as SKIFF_TOKEN"
        fi
        SERVICE=skiff-agent
    else
        SERVICE=skiff
    fi
    for arg in "$@"; do
        case "$arg" in
        --token | --token=* | -t | -t=*) warn "a token given as a flag is visible in the process list and the unit file; prefer SKIFF_TOKEN" ;;
        esac
    done

    # Paths that differ from skiff's defaults are passed on so that skiff,
    # killall and uninstall agree on where things are.
    [ "$DATA_DIR" = /var/lib/skiff ] || set -- "$@" --data-dir "$DATA_DIR"
    [ "$POD_LOG_DIR" = /var/log/pods ] || set -- "$@" --pod-log-dir "$POD_LOG_DIR"
    if [ "$ETC_DIR" != /etc/skiff ]; then
        set -- "$@" --registries-file "$ETC_DIR/registries.yaml"
        [ "$MODE" = agent ] || set -- "$@" --write-kubeconfig "$ETC_DIR/skiff.yaml"
    fi
    [ -z "${SKIFF_NODE_NAME:-}" ] || set -- "$@" --node-name "$SKIFF_NODE_NAME"

    # The flags quoted twice: for a systemd ExecStart= line and for an
    # OpenRC command_args="..." shell string.
    FLAGS_SYSTEMD=""
    FLAGS_SHELL=""
    for arg in "$@"; do
        FLAGS_SYSTEMD="$FLAGS_SYSTEMD $(quote_systemd "$arg")"
        FLAGS_SHELL="$FLAGS_SHELL $(quote_shell "$arg")"
    done
}

# safe_word succeeds when $1 needs no quoting anywhere.
safe_word() {
    case "$1" in
    "" | *[!A-Za-z0-9_./:=,@+-]*) return 1 ;;
    esac
}

quote_systemd() {
    if safe_word "$1"; then
        printf '%s' "$1"
    else
        # Inside "..." systemd still expands %specifiers and $VARS.
        printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\$/$$/g' -e 's/%/%%/g')"
    fi
}

quote_shell() {
    if safe_word "$1"; then
        printf '%s' "$1"
    else
        printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
    fi
}

setup_arch() {
    machine=$(uname -m)
    case "$machine" in
    x86_64 | amd64) ARCH=amd64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
    *) fatal "unsupported architecture '$machine': skiff is built for x86_64 (amd64) and aarch64 (arm64)" ;;
    esac
}

# -------------------------------------------------------------- host checks

check_host() {
    if is_true "${INSTALL_SKIFF_SKIP_HOST_CHECK:-false}"; then
        return
    fi
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        grep -qw memory /sys/fs/cgroup/cgroup.controllers || memory_cgroup_missing
    elif [ -f /proc/cgroups ]; then
        awk '$1 == "memory" && $4 == 1 { ok = 1 } END { exit !ok }' /proc/cgroups || memory_cgroup_missing
    else
        memory_cgroup_missing
    fi

    if ! has_iptables; then
        if command -v apt-get >/dev/null 2>&1; then
            pkg_cmd="apt-get update && apt-get install -y iptables"
        elif command -v dnf >/dev/null 2>&1; then
            pkg_cmd="dnf install -y iptables"
        elif command -v yum >/dev/null 2>&1; then
            pkg_cmd="yum install -y iptables"
        elif command -v apk >/dev/null 2>&1; then
            pkg_cmd="apk add iptables"
        else
            fatal "iptables is missing and no known package manager was found: install iptables (iptables, iptables-save, iptables-restore) and run this again"
        fi
        if [ "$(id -u)" -ne 0 ]; then
            fatal "iptables is missing; install it with: sudo sh -c '$pkg_cmd'"
        fi
        info "iptables is missing; installing it: $pkg_cmd"
        sh -c "$pkg_cmd" || fatal "installing iptables failed; run '$pkg_cmd' yourself and then this installer again"
        has_iptables || fatal "iptables is still missing after '$pkg_cmd'"
    fi
}

memory_cgroup_missing() {
    fatal "the memory cgroup controller is not enabled, so pod memory limits cannot work: add 'cgroup_memory=1 cgroup_enable=memory' to the kernel command line (/boot/cmdline.txt on a Raspberry Pi, GRUB_CMDLINE_LINUX in /etc/default/grub elsewhere), reboot and run this again"
}

has_iptables() {
    for tool in iptables iptables-save iptables-restore; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/sbin/$tool" ] || [ -x "/usr/sbin/$tool" ] || return 1
    done
}

# ----------------------------------------------------------------- binary

download() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 -o "$2" "$1" || fatal "downloading $1 failed"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1" || fatal "downloading $1 failed"
    else
        fatal "neither curl nor wget is installed; install one, or set INSTALL_SKIFF_BINARY=/path/to/skiff"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | awk '{ print $1 }'
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | awk '{ print $1 }'
    elif command -v openssl >/dev/null 2>&1; then
        openssl dgst -sha256 -r "$1" | awk '{ print $1 }'
    else
        fatal "no sha256sum, shasum or openssl to verify the download with"
    fi
}

verify_sha256() { # FILE EXPECTED WHAT
    actual=$(sha256_of "$1")
    expected=$(echo "$2" | tr 'A-F' 'a-f')
    if [ "$actual" != "$expected" ]; then
        fatal "checksum mismatch for $3: expected sha256 $expected, got $actual; nothing was installed"
    fi
}

# get_binary leaves the binary to install in $NEW_BINARY ("" = keep the installed one).
get_binary() {
    if is_true "${INSTALL_SKIFF_SKIP_DOWNLOAD:-false}"; then
        [ -x "$BIN_DIR/skiff" ] || fatal "INSTALL_SKIFF_SKIP_DOWNLOAD is set but $BIN_DIR/skiff is missing"
        NEW_BINARY=""
        info "using the skiff already in $BIN_DIR"
        return
    fi
    if [ -n "${INSTALL_SKIFF_BINARY:-}" ]; then
        [ -f "$INSTALL_SKIFF_BINARY" ] || fatal "INSTALL_SKIFF_BINARY=$INSTALL_SKIFF_BINARY is not a file"
        if [ -n "${INSTALL_SKIFF_SHA256:-}" ]; then
            verify_sha256 "$INSTALL_SKIFF_BINARY" "$INSTALL_SKIFF_SHA256" "$INSTALL_SKIFF_BINARY"
        fi
        NEW_BINARY=$INSTALL_SKIFF_BINARY
        return
    fi
    [ -n "${SKIFF_DOWNLOAD_URL:-}" ] || fatal "set SKIFF_DOWNLOAD_URL to where skiff-$ARCH and sha256sum.txt are published, or INSTALL_SKIFF_BINARY to a local skiff binary"
    base=${SKIFF_DOWNLOAD_URL%/}
    info "downloading $base/sha256sum.txt"
    download "$base/sha256sum.txt" "$TMP_DIR/sha256sum.txt"
    # Lines are "SUM  NAME" (or "SUM *NAME" for binary mode).
    expected=$(awk -v f="skiff-$ARCH" '$2 == f || $2 == "*" f || $2 == "./" f { print $1; exit }' "$TMP_DIR/sha256sum.txt")
    [ -n "$expected" ] || fatal "$base/sha256sum.txt has no entry for skiff-$ARCH"
    info "downloading $base/skiff-$ARCH"
    download "$base/skiff-$ARCH" "$TMP_DIR/skiff"
    verify_sha256 "$TMP_DIR/skiff" "$expected" "$base/skiff-$ARCH"
    NEW_BINARY=$TMP_DIR/skiff
}

# ------------------------------------------------------------- file writes

file_mode() { stat -c %a "$1"; }

same_file() {
    if command -v cmp >/dev/null 2>&1; then
        cmp -s "$1" "$2"
    else
        [ "$(sha256_of "$1")" = "$(sha256_of "$2")" ]
    fi
}

make_dir() {
    [ -d "$1" ] && return
    mkdir -p "$1" 2>/dev/null || fatal "cannot create $1: run the installer as root (curl -sfL URL | sudo sh -)"
}

# put_file SRC DEST MODE installs SRC as DEST with MODE unless DEST already
# holds the same bytes with that mode, so a re-run leaves files and their
# mtimes alone. It sets PUT_CHANGED and, on a change, CHANGED. The copy is
# made private first and renamed into place: a secret is never readable by
# others, and a running binary is replaced, not overwritten.
put_file() {
    PUT_CHANGED=false
    if [ -f "$2" ] && same_file "$1" "$2" && [ "$(file_mode "$2")" = "$3" ]; then
        info "unchanged $2"
        return
    fi
    make_dir "$(dirname "$2")"
    put_tmp="$2.skiff-install.$$"
    (umask 077 && cp "$1" "$put_tmp") 2>/dev/null || fatal "cannot write $2: run the installer as root (curl -sfL URL | sudo sh -)"
    chmod "$3" "$put_tmp"
    mv -f "$put_tmp" "$2"
    info "wrote $2"
    PUT_CHANGED=true
    CHANGED=true
}

sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# env_line NAME writes NAME='value' when NAME is set. systemd's
# EnvironmentFile and sh both read single-quoted values literally.
env_line() {
    eval "env_value=\${$1:-}"
    [ -n "$env_value" ] || return 0
    case "$env_value" in
    *"'"* | *'
'*) fatal "$1 must not contain a single quote or a newline" ;;
    esac
    printf "%s='%s'\n" "$1" "$env_value"
}

write_env_file() {
    {
        echo "# Environment of the $SERVICE service, written by the skiff installer."
        echo "# Holds the join token: keep it mode 0600."
        for name in SKIFF_URL SKIFF_TOKEN SKIFF_TOKEN_FILE HTTP_PROXY HTTPS_PROXY NO_PROXY; do
            env_line "$name"
        done
    } >"$1"
}

write_systemd_unit() { # DEST ENV_FILE
    cat >"$1" <<EOF
# Written by the skiff installer; run it again to change this file.
[Unit]
Description=skiff $MODE: a small Kubernetes in one binary
Wants=network-online.target
After=network-online.target

[Service]
# skiff sends READY=1 itself once it serves.
Type=notify
NotifyAccess=main
EnvironmentFile=-$2
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$(quote_systemd "$BIN_DIR/skiff") $MODE$FLAGS_SYSTEMD
# Only skiff itself is stopped: the shims running containers outlive a
# restart or an upgrade. skiff-killall.sh stops everything.
KillMode=process
# skiff manages the cgroups of its containers.
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
EOF
}

write_openrc_script() { # DEST ENV_FILE
    cat >"$1" <<EOF
#!/sbin/openrc-run
# Written by the skiff installer; run it again to change this file.
description="skiff $MODE: a small Kubernetes in one binary"

supervisor=supervise-daemon
command=$(sq "$BIN_DIR/skiff")
command_args=$(sq "$MODE$FLAGS_SHELL")
output_log=/var/log/$SERVICE.log
error_log=/var/log/$SERVICE.log
respawn_delay=5
respawn_max=0
rc_ulimit="-n 1048576 -u unlimited -c unlimited"
# Only skiff itself is stopped: the shims running containers outlive a
# restart or an upgrade. skiff-killall.sh stops everything.
rc_cgroup_cleanup=no

# The token and server URL, exported to skiff (never on its command line).
set -a
[ -f $(sq "$2") ] && . $(sq "$2")
set +a

depend() {
    need net
    after network-online firewall
    want cgroups
}

start_pre() {
    modprobe br_netfilter 2>/dev/null || true
    modprobe overlay 2>/dev/null || true
}
EOF
}

# The killall and uninstall scripts: a header with this install's paths,
# then a fixed body.
write_header() {
    echo "#!/bin/sh"
    echo "# shellcheck disable=SC2034 # the paths of this install; not every script uses all"
    echo "# Written by the skiff installer."
    echo "BIN_DIR=$(sq "$BIN_DIR")"
    echo "SYSTEMD_DIR=$(sq "$SYSTEMD_DIR")"
    echo "OPENRC_DIR=$(sq "$OPENRC_DIR")"
    echo "OPENRC_CONF_DIR=$(sq "$OPENRC_CONF_DIR")"
    echo "ETC_DIR=$(sq "$ETC_DIR")"
    echo "DATA_DIR=$(sq "$DATA_DIR")"
    echo "POD_LOG_DIR=$(sq "$POD_LOG_DIR")"
}

write_killall() {
    {
        write_header
        cat <<'EOF'
# Stops skiff and everything it started on this host: the service, the
# shims and their containers, mounts, network links, iptables rules and
# the cluster DNS address. Files are kept (skiff-uninstall.sh removes them).
set -u
if [ "$(id -u)" -ne 0 ]; then
    echo "skiff-killall.sh must run as root" >&2
    exit 1
fi

for svc in skiff skiff-agent; do
    if [ -f "$SYSTEMD_DIR/$svc.service" ] && command -v systemctl >/dev/null 2>&1; then
        systemctl stop "$svc.service" 2>/dev/null
    fi
    if [ -f "$OPENRC_DIR/$svc" ] && command -v rc-service >/dev/null 2>&1; then
        rc-service "$svc" stop 2>/dev/null
    fi
done

# Shims are "skiff shim ..." processes; their containers are every process
# in the cgroups under /skiff (cgroup v2, or each v1 hierarchy).
shims=""
for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
    case "$cmd" in
    skiff\ shim\ * | */skiff\ shim\ *) shims="$shims ${d#/proc/}" ;;
    esac
done
# shellcheck disable=SC2086 # a list of pids
[ -z "$shims" ] || kill -9 $shims 2>/dev/null
for cg in /sys/fs/cgroup/skiff /sys/fs/cgroup/*/skiff; do
    [ -d "$cg" ] || continue
    pids=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | tr '\n' ' ')
    # shellcheck disable=SC2086 # a list of pids
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null
done
sleep 1
for cg in /sys/fs/cgroup/skiff /sys/fs/cgroup/*/skiff; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done

# Mounts below the data dir and /run/skiff, deepest first.
awk -v a="$DATA_DIR/" -v b="/run/skiff/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts |
    sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "could not unmount $m" >&2
    done

if command -v ip >/dev/null 2>&1; then
    for link in skiff0 skiff.vxlan /sys/class/net/skf*; do
        link=${link#/sys/class/net/}
        [ -e "/sys/class/net/$link" ] && ip link delete "$link" 2>/dev/null
    done
    ip addr del 10.43.0.10/32 dev lo 2>/dev/null
fi

for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null 2>&1 || continue
    if "$ipt-save" 2>/dev/null | grep -q SKIFF; then
        "$ipt-save" | grep -v SKIFF | "$ipt-restore"
    fi
done

rm -rf /run/skiff
exit 0
EOF
    } >"$1"
}

write_uninstall() {
    {
        write_header
        cat <<'EOF'
# Removes skiff from this host: runs skiff-killall.sh, then deletes the
# services, the binary, these scripts, the config dir and the data dir.
# The pod log dir is deleted only if it did not exist before skiff was
# installed (the installer leaves a marker in the config dir); otherwise it
# is kept, as it may hold other programs' logs.
set -u
if [ "$(id -u)" -ne 0 ] && [ ! -w "$BIN_DIR" ]; then
    echo "skiff-uninstall.sh must run as root" >&2
    exit 1
fi
if [ -x "$BIN_DIR/skiff-killall.sh" ]; then
    "$BIN_DIR/skiff-killall.sh" || echo "skiff-killall.sh failed; removing files anyway" >&2
fi

reload=false
for svc in skiff skiff-agent; do
    if [ -f "$SYSTEMD_DIR/$svc.service" ]; then
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable "$svc.service" >/dev/null 2>&1
        fi
        rm -f "$SYSTEMD_DIR/$svc.service" "$SYSTEMD_DIR/$svc.service.env"
        reload=true
    fi
    if [ -f "$OPENRC_DIR/$svc" ]; then
        if command -v rc-update >/dev/null 2>&1; then
            rc-update delete "$svc" default >/dev/null 2>&1
        fi
        rm -f "$OPENRC_DIR/$svc" "$OPENRC_CONF_DIR/$svc"
    fi
done
if [ "$reload" = true ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
    systemctl reset-failed >/dev/null 2>&1
fi

# A mount left below the data dir may be a host directory (a hostPath
# volume): deleting through it would delete the host's files.
if [ -z "$DATA_DIR" ] || [ "$DATA_DIR" = / ]; then
    echo "refusing to delete data dir '$DATA_DIR'" >&2
elif awk -v a="$DATA_DIR/" 'index($2, a) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "mounts remain under $DATA_DIR; kept it. Unmount them and delete it yourself." >&2
else
    rm -rf "$DATA_DIR"
fi

if [ -f "$ETC_DIR/.pod-log-dir-created-by-skiff" ]; then
    rm -rf "$POD_LOG_DIR"
elif [ -d "$POD_LOG_DIR" ]; then
    echo "kept $POD_LOG_DIR: it existed before skiff was installed"
fi
rm -rf "$ETC_DIR"
rm -f "$BIN_DIR/skiff" "$BIN_DIR/skiff-killall.sh" "$BIN_DIR/skiff-uninstall.sh"
echo "skiff is uninstalled"
EOF
    } >"$1"
}

# ----------------------------------------------------------------- install

install_files() {
    CHANGED=false
    RESTART=false
    RELOAD=false

    if [ -n "$NEW_BINARY" ]; then
        put_file "$NEW_BINARY" "$BIN_DIR/skiff" 755
        [ "$PUT_CHANGED" = false ] || RESTART=true
    fi
    version=$("$BIN_DIR/skiff" version 2>/dev/null) || fatal "$BIN_DIR/skiff does not run on this host (is it built for $ARCH?)"
    info "binary: $version"

    write_killall "$TMP_DIR/killall"
    put_file "$TMP_DIR/killall" "$BIN_DIR/skiff-killall.sh" 755
    write_uninstall "$TMP_DIR/uninstall"
    put_file "$TMP_DIR/uninstall" "$BIN_DIR/skiff-uninstall.sh" 755

    make_dir "$ETC_DIR"
    # Record, once, that the pod log dir did not exist before skiff: then
    # skiff creates it and skiff-uninstall.sh may remove it.
    if [ ! -e "$POD_LOG_DIR" ] && [ ! -f "$ETC_DIR/.pod-log-dir-created-by-skiff" ]; then
        : >"$ETC_DIR/.pod-log-dir-created-by-skiff"
        info "$POD_LOG_DIR does not exist yet: skiff creates it and skiff-uninstall.sh removes it"
    fi

    if [ "$INIT" = systemd ]; then
        UNIT=$SERVICE.service
        ENV_FILE=$SYSTEMD_DIR/$UNIT.env
        SERVICE_FILE=$SYSTEMD_DIR/$UNIT
        write_systemd_unit "$TMP_DIR/unit" "$ENV_FILE"
    else
        UNIT=$SERVICE
        ENV_FILE=$OPENRC_CONF_DIR/$SERVICE
        SERVICE_FILE=$OPENRC_DIR/$SERVICE
        write_openrc_script "$TMP_DIR/unit" "$ENV_FILE"
    fi
    write_env_file "$TMP_DIR/env"
    put_file "$TMP_DIR/env" "$ENV_FILE" 600
    [ "$PUT_CHANGED" = false ] || RESTART=true
    if [ "$INIT" = systemd ]; then
        put_file "$TMP_DIR/unit" "$SERVICE_FILE" 644
    else
        put_file "$TMP_DIR/unit" "$SERVICE_FILE" 755
    fi
    if [ "$PUT_CHANGED" = true ]; then
        RESTART=true
        RELOAD=true
    fi

    if [ "$SERVICE" = skiff ]; then other=skiff-agent; else other=skiff; fi
    if [ -f "$SYSTEMD_DIR/$other.service" ] || [ -f "$OPENRC_DIR/$other" ]; then
        warn "an earlier install left the $other service; run skiff-uninstall.sh first if you do not want both"
    fi
}

start_service() {
    if is_true "$SKIP_START"; then
        info "not starting $UNIT (INSTALL_SKIFF_SKIP_START=true)"
        return
    fi
    if [ "$INIT" = systemd ]; then
        [ "$RELOAD" = false ] || systemctl daemon-reload
        systemctl enable --quiet "$UNIT"
        if [ "$RESTART" = true ]; then
            info "systemd: (re)starting $UNIT"
            systemctl restart "$UNIT"
        else
            systemctl start "$UNIT"
        fi
    else
        rc-update add "$UNIT" default >/dev/null
        if [ "$RESTART" = true ]; then
            info "openrc: (re)starting $UNIT"
            rc-service "$UNIT" restart
        elif ! rc-service "$UNIT" status >/dev/null 2>&1; then
            rc-service "$UNIT" start
        fi
    fi
}

print_summary() {
    if [ "$CHANGED" = false ]; then
        info "nothing changed: skiff $MODE is already installed as requested"
    fi
    datadir_flag=""
    [ "$DATA_DIR" = /var/lib/skiff ] || datadir_flag=" --data-dir $DATA_DIR"
    if [ "$MODE" = server ]; then
        cat <<EOF
[INFO]  skiff server: service $UNIT ($INIT)
        kubeconfig:  sudo skiff kubeconfig$datadir_flag   (or $ETC_DIR/skiff.yaml)
        agent token: sudo skiff token --agent$datadir_flag   (joins agents only)
        server token: sudo skiff token$datadir_flag   (joins servers; keep it secret)
        add a node:  curl -sfL <this script's URL> | SKIFF_URL=https://<this host>:6443 SKIFF_TOKEN=<agent token> sh -
        uninstall:   sudo $BIN_DIR/skiff-uninstall.sh
EOF
    else
        cat <<EOF
[INFO]  skiff agent joining $SKIFF_URL: service $UNIT ($INIT)
        uninstall:   sudo $BIN_DIR/skiff-uninstall.sh
EOF
    fi
}

main() {
    umask 022
    setup_arch
    setup_env "$@"
    check_host
    TMP_DIR=$(mktemp -d)
    trap 'rm -rf "$TMP_DIR"' EXIT
    get_binary
    install_files
    start_service
    print_summary
}

main "$@"
