#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 60s).
# Usage: scripts/fuzz.sh [DURATION]
set -euo pipefail
fuzztime=${1:-60s}
cd "$(dirname "$0")/.."
found=0
while IFS= read -r file; do
	dir=./$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		found=$((found + 1))
		echo "== fuzz $dir $target for $fuzztime"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' | sort)
if [ "$found" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $found targets ran for $fuzztime each"
