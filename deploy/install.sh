#!/bin/sh
# The pivitals agent installer. The primary serves this file at /install.sh with its own
# address filled in below, so that on a board one line does everything:
#
#   curl -fsSL http://PRIMARY:7070/install.sh | sudo sh -s -- --token ENROLL_TOKEN
#
# Options:
#   --token TOKEN       the primary's enrollment token (required, except with --uninstall)
#   --name NAME         the node name (default: this host's name)
#   --labels K=V,...    labels on every point, e.g. stack=2,position=1
#   --prefix DIR        install under DIR instead of / (a staging root: no user is made, no
#                       service started)
#   --no-start          write everything but do not enable or start the service
#   --uninstall         remove what this script installed: binary, settings, unit, state
#                       directory and the system user
#
# What it does: finds this machine's architecture (x86_64, aarch64, armv7, armv6), checks
# that the primary answers, downloads the agent binary the primary serves for it and checks
# its SHA-256, then installs
#   /var/lib/pivitals-agent/bin/pivitals-agent          (0755, the service user's)
#   /usr/local/bin/pivitals-agent                       (a symbolic link to it)
#   /etc/pivitals/agent.toml                            (0600, the token inside)
#   /etc/systemd/system/pivitals-agent.service          (0644)
# makes the system user pivitals-agent, enables and starts the service (state in
# /var/lib/pivitals-agent), and waits up to 20 s for the node to register. The binary lives
# in the service's state directory, the one place its sandbox (ProtectSystem=strict) lets it
# write, so that an agent with allow_update can replace itself when the primary asks.
# Run again, it changes only what differs (and restarts the agent if something did).
#
# Exit codes: 0 done; 1 failed; 2 bad option; 3 the primary cannot be reached; 4 the
# download does not match its SHA-256 (nothing installed); 5 installed, but the node did not
# register within 20 s.
set -eu

PRIMARY_URL='@PIVITALS_PRIMARY_URL@'

SERVICE=pivitals-agent
SERVICE_USER=pivitals-agent
REGISTER_WAIT=20

say() { printf 'pivitals: %s\n' "$*"; }
fail() {
	code=$1
	shift
	printf 'pivitals: %s\n' "$*" >&2
	exit "$code"
}

usage() {
	cat <<EOF
usage: sh install.sh --token TOKEN [--name NAME] [--labels stack=2,position=1]
                     [--prefix DIR] [--no-start]
       sh install.sh --uninstall [--prefix DIR]
EOF
}

TOKEN=
NAME=
LABELS=
PREFIX=
NO_START=
UNINSTALL=
while [ $# -gt 0 ]; do
	case $1 in
	--token | --name | --labels | --prefix)
		[ $# -ge 2 ] || fail 2 "$1 needs a value"
		case $1 in
		--token) TOKEN=$2 ;;
		--name) NAME=$2 ;;
		--labels) LABELS=$2 ;;
		--prefix) PREFIX=$2 ;;
		esac
		shift 2
		;;
	--token=*) TOKEN=${1#*=} && shift ;;
	--name=*) NAME=${1#*=} && shift ;;
	--labels=*) LABELS=${1#*=} && shift ;;
	--prefix=*) PREFIX=${1#*=} && shift ;;
	--no-start) NO_START=1 && shift ;;
	--uninstall) UNINSTALL=1 && shift ;;
	-h | --help) usage && exit 0 ;;
	*)
		usage >&2
		fail 2 "unknown option $1"
		;;
	esac
done

# A prefix of / is no prefix; any other is a staging root, without trailing slashes.
while [ "${PREFIX%/}" != "$PREFIX" ]; do PREFIX=${PREFIX%/}; done
case $PREFIX in
'' | /*) ;;
*) fail 2 "--prefix must be an absolute path, got $PREFIX" ;;
esac

STATE=$PREFIX/var/lib/$SERVICE
BIN=$STATE/bin/pivitals-agent
LINK=$PREFIX/usr/local/bin/pivitals-agent
# Relative, so that it resolves under a --prefix as on the real root.
LINK_TARGET=../../../var/lib/$SERVICE/bin/pivitals-agent
CONF_DIR=$PREFIX/etc/pivitals
CONF=$CONF_DIR/agent.toml
UNIT=$PREFIX/etc/systemd/system/$SERVICE.service

if [ -z "$PREFIX" ] && [ "$(id -u)" -ne 0 ]; then
	fail 1 "run as root (curl -fsSL $PRIMARY_URL/install.sh | sudo sh -s -- ...)"
fi

# Whether systemd runs here (it does not in a container or a chroot).
has_systemd() {
	[ -z "$PREFIX" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

# Removes the directories of $1 that are empty, up to the prefix, but only under a prefix: on
# a real root, /usr/local/bin and /etc/systemd/system are not ours to remove.
prune_dirs() {
	[ -n "$PREFIX" ] || return 0
	dir=$1
	while [ "$dir" != "$PREFIX" ] && [ -d "$dir" ]; do
		rmdir "$dir" 2>/dev/null || return 0
		dir=${dir%/*}
	done
}

uninstall() {
	if has_systemd; then
		systemctl disable --now "$SERVICE" >/dev/null 2>&1 || true
	fi
	rm -f "$LINK" "$BIN" "$CONF" "$UNIT"
	rm -rf "$STATE"
	if has_systemd; then
		systemctl daemon-reload || true
	fi
	if [ -z "$PREFIX" ] && id "$SERVICE_USER" >/dev/null 2>&1; then
		userdel "$SERVICE_USER" 2>/dev/null || deluser --system "$SERVICE_USER" >/dev/null 2>&1 || true
	fi
	# /etc/pivitals may hold a primary's settings too: it goes only when empty.
	rmdir "$CONF_DIR" 2>/dev/null || true
	prune_dirs "${LINK%/*}"
	prune_dirs "${UNIT%/*}"
	prune_dirs "$CONF_DIR"
	prune_dirs "${STATE%/*}"
	say "pivitals-agent removed${PREFIX:+ from $PREFIX}"
}

if [ -n "$UNINSTALL" ]; then
	uninstall
	exit 0
fi

# deploy/install.sh itself, not a copy a primary served with its address in it.
case $PRIMARY_URL in
@*@) fail 2 "this copy names no primary: run the one a primary serves (curl -fsSL http://PRIMARY:7070/install.sh | sudo sh -s -- --token TOKEN)" ;;
esac

# --- Checks of the options, before anything is touched. ---------------------------------

[ -n "$TOKEN" ] || fail 2 "--token is required (the enrollment token the primary printed at start)"
case $TOKEN in
*[!A-Za-z0-9._~+/=-]*) fail 2 "--token holds a character that is not a letter, digit or ._~+/=-" ;;
esac
[ -n "$NAME" ] || NAME=$(uname -n)
case $NAME in
[A-Za-z0-9]*) ;;
*) fail 2 "the node name '$NAME' must start with a letter or digit; pass --name" ;;
esac
case $NAME in
*[!A-Za-z0-9._-]*) fail 2 "the node name '$NAME' may hold only letters, digits and ._-; pass --name" ;;
esac
[ ${#NAME} -le 63 ] || fail 2 "the node name '$NAME' is longer than 63 characters; pass --name"
case $LABELS in
*[!A-Za-z0-9._:/@+=,-]*) fail 2 "--labels must be key=value pairs separated by commas" ;;
esac
command -v curl >/dev/null 2>&1 || fail 1 "curl is needed (apt-get install curl)"
command -v sha256sum >/dev/null 2>&1 || fail 1 "sha256sum is needed (coreutils)"

# --- The architecture. ------------------------------------------------------------------

machine=$(uname -m)
case $machine in
x86_64 | amd64) ARCH=x86_64 ;;
aarch64 | arm64) ARCH=aarch64 ;;
armv7* | armv8l) ARCH=armv7 ;;
armv6*) ARCH=armv6 ;;
*) fail 1 "this machine ($machine) is not one pivitals builds the agent for (x86_64, aarch64, armv7, armv6)" ;;
esac
# A 32-bit userland on a 64-bit kernel (32-bit Raspberry Pi OS on a Pi 3, 4 or 5) runs
# 32-bit programs only: the ARMv7 build.
userland=
if command -v dpkg >/dev/null 2>&1; then
	userland=$(dpkg --print-architecture 2>/dev/null || true)
fi
bits=$(getconf LONG_BIT 2>/dev/null || echo 64)
if [ "$ARCH" = aarch64 ] && { [ "$bits" = 32 ] || [ "$userland" = armhf ]; }; then
	ARCH=armv7
fi
if [ "$ARCH" = x86_64 ] && { [ "$bits" = 32 ] || [ "$userland" = i386 ]; }; then
	fail 1 "this 32-bit x86 userland is not one pivitals builds the agent for"
fi

# --- The primary, and the download. -----------------------------------------------------

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

if ! curl -fsS --connect-timeout 5 --max-time 15 -o /dev/null "$PRIMARY_URL/healthz" 2>"$WORK/curl.err"; then
	fail 3 "cannot reach the pivitals primary at $PRIMARY_URL ($(tr -d '\n' <"$WORK/curl.err")); check that it runs and that this machine can reach it. Nothing was installed."
fi

if ! curl -fsS --max-time 30 -o "$WORK/sha256" "$PRIMARY_URL/agent/$ARCH.sha256" 2>"$WORK/curl.err"; then
	fail 1 "the primary at $PRIMARY_URL serves no agent binary for $ARCH ($(tr -d '\n' <"$WORK/curl.err")). Nothing was installed."
fi
expected=$(cut -d' ' -f1 <"$WORK/sha256")
if ! curl -fsS --max-time 300 -o "$WORK/agent" "$PRIMARY_URL/agent/$ARCH" 2>"$WORK/curl.err"; then
	fail 1 "downloading $PRIMARY_URL/agent/$ARCH failed ($(tr -d '\n' <"$WORK/curl.err")). Nothing was installed."
fi
actual=$(sha256sum "$WORK/agent" | cut -d' ' -f1)
if [ -z "$expected" ] || [ "$actual" != "$expected" ]; then
	fail 4 "the agent binary for $ARCH does not match its SHA-256 (expected ${expected:-nothing}, got $actual). Nothing was installed."
fi
chmod 0755 "$WORK/agent"

# --- The files. -------------------------------------------------------------------------

CHANGED=

# install_file SOURCE TARGET MODE: puts SOURCE at TARGET (atomically, by rename) unless TARGET
# already holds the same bytes, then sets MODE.
install_file() {
	mkdir -p "${2%/*}"
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		chmod "$3" "$2"
		say "unchanged: $2"
		return 0
	fi
	# Owner-only until its mode is set: the settings hold the token.
	(umask 077 && cp "$1" "$2.new")
	chmod "$3" "$2.new"
	mv -f "$2.new" "$2"
	CHANGED=1
	say "installed: $2"
}

{
	echo "# Settings of the pivitals agent, written by the installer of $PRIMARY_URL."
	echo "# Every key is described in the README, \"Configuration\" -> \"Agent\"."
	echo "primary_url = \"$PRIMARY_URL\""
	echo "enroll_token = \"$TOKEN\""
	echo "node_name = \"$NAME\""
	if [ -n "$LABELS" ]; then
		echo "labels = \"$LABELS\""
	fi
} >"$WORK/agent.toml"

cat >"$WORK/unit" <<'EOF'
# The pivitals agent as a systemd service, written by the pivitals installer (remove it with
# the installer's --uninstall). Settings: /etc/pivitals/agent.toml.

[Unit]
Description=pivitals agent (pushes this host's vitals to the pivitals primary)
Wants=network-online.target
After=network-online.target time-sync.target

[Service]
Type=exec
ExecStart=/var/lib/pivitals-agent/bin/pivitals-agent --config /etc/pivitals/agent.toml
# The system user the installer made; its state (node credential, backlog) and its binary
# (bin/, which an update replaces) live in /var/lib/pivitals-agent, passed as $STATE_DIRECTORY.
User=pivitals-agent
Group=pivitals-agent
StateDirectory=pivitals-agent
StateDirectoryMode=0700
Restart=on-failure
RestartSec=5s
# Exit code 2 is a configuration error (a bad setting in agent.toml): restarting cannot fix it.
RestartPreventExitStatus=2
# Exit code 75: the agent replaced its binary (the primary's "update agents") and must be
# started again at once, whatever Restart= says.
RestartForceExitStatus=75
# On SIGTERM the agent pushes once more and says goodbye (the node shows "stopped").
TimeoutStopSec=30s

# Hardening, as deploy/systemd/pivitals-agent.service: the agent reads /proc and /sys,
# statvfs()s every mounted filesystem, writes only its state directory and talks HTTP(S).
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
EOF

if [ -z "$PREFIX" ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
	if command -v useradd >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir "/var/lib/$SERVICE" \
			--shell /usr/sbin/nologin "$SERVICE_USER"
	else
		adduser --system --group --no-create-home --home "/var/lib/$SERVICE" "$SERVICE_USER"
	fi
	say "made the system user $SERVICE_USER"
fi

install_file "$WORK/agent" "$BIN" 0755
chmod 0700 "$STATE"
if [ "$(readlink "$LINK" 2>/dev/null || true)" != "$LINK_TARGET" ]; then
	mkdir -p "${LINK%/*}"
	rm -f "$LINK"
	ln -s "$LINK_TARGET" "$LINK"
	say "installed: $LINK -> $BIN"
fi
install_file "$WORK/agent.toml" "$CONF" 0600
if [ -z "$PREFIX" ]; then
	chown "$SERVICE_USER:$SERVICE_USER" "$CONF" "$STATE" "$STATE/bin" "$BIN"
fi
install_file "$WORK/unit" "$UNIT" 0644

# --- The service. -----------------------------------------------------------------------

if [ -n "$NO_START" ] || [ -n "$PREFIX" ]; then
	say "node $NAME: installed, not started${PREFIX:+ (under --prefix $PREFIX)}"
	exit 0
fi
if ! has_systemd; then
	say "node $NAME: installed, not started (systemd does not run here)"
	exit 0
fi
systemctl daemon-reload
systemctl enable --now "$SERVICE" >/dev/null 2>&1 || systemctl enable --now "$SERVICE"
if [ -n "$CHANGED" ]; then
	systemctl restart "$SERVICE"
fi

waited=0
while [ "$waited" -lt "$REGISTER_WAIT" ]; do
	if systemctl is-active --quiet "$SERVICE" &&
		curl -fsS --max-time 5 -o /dev/null "$PRIMARY_URL/api/v1/nodes/$NAME" 2>/dev/null; then
		say "node $NAME: registered with $PRIMARY_URL"
		exit 0
	fi
	sleep 1
	waited=$((waited + 1))
done
fail 5 "node $NAME: installed and started, but not registered with $PRIMARY_URL after ${REGISTER_WAIT} s; see journalctl -u $SERVICE"
