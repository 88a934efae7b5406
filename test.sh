#!/usr/bin/env bash
# Runs every Fabric test and ends with the line "N passed, N failed".
# Usage: ./test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~Dma]
# First makes sure the local PostgreSQL server the persistence tests use is installed and running
# (scripts/ensure-postgres.sh); if it cannot be, the tests still run and those tests fail saying why.
# Then that Chromium is installed (scripts/ensure-chromium.sh) for the dashboard's browser test, which is skipped without it.
set -uo pipefail
cd "$(dirname "$0")"

if ! bash scripts/ensure-postgres.sh; then
  echo "test.sh: PostgreSQL is not available; the PostgreSQL tests will fail" >&2
fi
# Chromium for the dashboard's browser test (scripts/ensure-chromium.sh); without it that test reports itself skipped.
if ! bash scripts/ensure-chromium.sh; then
  echo "test.sh: Chromium is not available; the dashboard's browser test will be skipped" >&2
fi
export FABRIC_TEST_POSTGRES="Host=127.0.0.1;Port=5432;Username=fabric;Password=fabric;Database=fabric"

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# The build runs under a lock so that two runs started at once in one checkout do not write the same obj/ and bin/
# files together; the second finds the build up to date. The tests then run from what was built.
if ! flock obj.build.lock dotnet build Fabric.sln --nologo -v quiet; then
  echo "the build failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
dotnet test Fabric.sln --no-build --logger "trx;LogFileName=results.trx" --results-directory "$results" "$@"
status=$?

trx="$results/results.trx"
if [ ! -f "$trx" ]; then
  echo "no test results were written (the build or the test host failed)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)"
count() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
passed="$(count passed)"; failed="$(count failed)"
notrun="$(count notExecuted)"
echo "${passed:-0} passed, ${failed:-0} failed, ${notrun:-0} skipped"
if [ "$status" -ne 0 ] || [ "${failed:-0}" -ne 0 ] || [ "${passed:-0}" -eq 0 ]; then exit 1; fi
