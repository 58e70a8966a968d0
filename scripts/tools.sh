#!/usr/bin/env bash
# Installs the Go tools the checks need into ./.bin (pinned versions), so a
# fresh machine needs nothing but Go. Idempotent: a tool already at the
# pinned version is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.bin"
mkdir -p "$BIN"

install() { # name module version
	local name=$1 module=$2 version=$3 stamp="$BIN/.$1.version"
	if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
		return
	fi
	echo "installing $name $version" >&2
	GOBIN="$BIN" go install "$module@$version"
	echo "$version" >"$stamp"
}

install staticcheck honnef.co/go/tools/cmd/staticcheck v0.8.2
# The S3-compatible server that the S3 store's tests start (internal/testenv).
install versitygw github.com/versity/versitygw/cmd/versitygw v1.8.0

# The browser that the web UI's tests drive (ui package). Debian's chromium,
# installed only when it is missing and apt-get can install it (as root).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
	if [[ $(id -u) -eq 0 ]]; then
		echo "installing chromium" >&2
		# Another apt-get (a second checkout's make, unattended upgrades)
		# may hold dpkg's lock: wait for it rather than fail.
		apt-get -o DPkg::Lock::Timeout=600 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
	else
		echo "chromium is missing: the web UI's browser tests need it (apt-get install chromium, as root)" >&2
	fi
fi
