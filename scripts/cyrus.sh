#!/bin/sh
# Unpacks Debian's Cyrus IMAP for the test harness (internal/testenv
# StartCyrus) without installing it: the cyrus-imapd package conflicts with
# dovecot-imapd, which the other suites need. apt-get download fetches the
# packages, dpkg -x unpacks them into the harness' directory
# ($MAILTRIAGE_CYRUS_DIR, default .cache/cyrus at the top of the
# repository); nothing outside it changes. Run as any user with apt access.
# `cyrus.sh --check` exits 0 when it is unpacked already (scripts/deps.sh
# asks so before it runs this script).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${MAILTRIAGE_CYRUS_DIR:-$repo/.cache/cyrus}
# cyrus-imapd and cyrus-common, and the libraries of theirs a Debian 12
# system with dovecot-imapd lacks.
pkgs="cyrus-imapd cyrus-common libxapian30 libpcre3 libical3"

if [ "${1:-}" = --check ]; then
	test -x "$dest/usr/lib/cyrus/bin/master"
	exit
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" # apt's _apt user downloads into it
# A machine that never ran apt-get update has no package lists to download
# from: update once and try again.
(cd "$tmp" && apt-get download $pkgs) || { apt-get update -qq && (cd "$tmp" && apt-get download $pkgs); }
mkdir -p "$tmp/root"
for deb in "$tmp"/*.deb; do
	dpkg -x "$deb" "$tmp/root"
done

libs=$(ls -d "$tmp"/root/usr/lib/*-linux-gnu "$tmp"/root/lib/*-linux-gnu 2>/dev/null | tr '\n' ':')
missing=$(for b in master imapd ctl_cyrusdb; do
	LD_LIBRARY_PATH=$libs ldd "$tmp/root/usr/lib/cyrus/bin/$b"
done | awk '/not found/ {print $1}' | sort -u)
if [ -n "$missing" ]; then
	echo "cyrus.sh: libraries still missing after unpacking: $missing" >&2
	echo "cyrus.sh: add the Debian packages that ship them to pkgs in $0" >&2
	exit 1
fi

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/root" "$dest"
echo "Cyrus IMAP unpacked in $dest"
