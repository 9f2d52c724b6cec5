#!/usr/bin/env bash
# deps.sh — the system packages the tests need, each detected by the file
# the tests use. `make test` and `.ci/run` both run it before anything else.
#
#   scripts/deps.sh            install what is missing (as root on Debian:
#                              apt-get update, then apt-get install), or stop
#                              with the exact command to run
#   scripts/deps.sh --dry-run  print what is missing and the command that
#                              would install it; change nothing
#
# Exit status: 0 when everything is present (or has just been installed);
# 1 when something is missing and was not installed (always so with
# --dry-run); 2 on bad usage or a bad line in the table.
#
# DEPS_ROOT (default empty) prefixes every file checked and PATH decides
# which commands are found: the test of this script (scripts/deps_test.go)
# points both at a fake machine.
set -euo pipefail

# One line per need: what provides it, then how it is detected:
#   PACKAGE file PATH     the Debian package installs PATH
#   PACKAGE cmd  NAME     the Debian package puts NAME on PATH
#   -       script FILE   FILE (relative to this directory) fetches what it
#                         needs itself; `FILE --check` exits 0 when done
# Several lines may name one package.
needs='
dovecot-core     file /usr/sbin/dovecot
dovecot-imapd    file /usr/lib/dovecot/imap
redis-server     cmd  redis-server
redis-tools      cmd  redis-cli
openssl          cmd  openssl
gnupg            cmd  gpg
make             cmd  make
git              cmd  git
ca-certificates  file /etc/ssl/certs/ca-certificates.crt
-                script cyrus.sh
'

mode=install
case "${1:-}" in
"") ;;
--dry-run) mode=dry-run ;;
*)
	echo "usage: $0 [--dry-run]" >&2
	exit 2
	;;
esac
root="${DEPS_ROOT:-}"
here="$(cd "$(dirname "$0")" && pwd)"

# detect fills packages and scripts with what is missing, and says so.
detect() {
	packages=()
	scripts=()
	local pkg kind what
	while read -r pkg kind what; do
		[ -n "$pkg" ] || continue
		case "$kind" in
		file) [ -e "$root$what" ] && continue ;;
		cmd) command -v "$what" >/dev/null 2>&1 && continue ;;
		script)
			"$here/$what" --check >/dev/null 2>&1 && continue
			scripts+=("$here/$what")
			echo "deps: $what has not fetched what it needs"
			continue
			;;
		*)
			echo "deps: bad line: $pkg $kind $what" >&2
			exit 2
			;;
		esac
		case " ${packages[*]} " in
		*" $pkg "*) ;;
		*) packages+=("$pkg") ;;
		esac
		echo "deps: missing $what (Debian package $pkg)"
	done <<<"$needs"
}

detect
[ ${#packages[@]} -eq 0 ] && [ ${#scripts[@]} -eq 0 ] && exit 0

commands=()
[ ${#packages[@]} -eq 0 ] || commands+=("apt-get update && apt-get install -y --no-install-recommends ${packages[*]}")
commands+=("${scripts[@]}")
if [ "$mode" = dry-run ]; then
	for c in "${commands[@]}"; do echo "deps: would run: $c"; done
	exit 1
fi
if [ "$(id -u)" -ne 0 ] || [ ! -f "$root/etc/debian_version" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: this is not root on Debian; install them first, as root:" >&2
	for c in "${commands[@]}"; do echo "  $c" >&2; done
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#packages[@]} -gt 0 ]; then
	echo "deps: installing ${packages[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${packages[@]}"
	# Debian starts system Dovecot and Redis services on install; the tests
	# run private instances on free loopback ports and need none of them.
fi
for s in "${scripts[@]}"; do "$s"; done
detect
if [ ${#packages[@]} -gt 0 ] || [ ${#scripts[@]} -gt 0 ]; then
	echo "deps: still missing after the install" >&2
	exit 1
fi
