#!/usr/bin/env bash
# The build builds once, and a run's manifest names the commit it was built
# from (issue 22). In a fresh clone whose refs are all loose (no
# packed-refs), a second `cargo build` and a `cargo run` compile nothing;
# after a new commit the next build records that commit in manifest.json;
# after `git pack-refs` (the branch's ref file gone) it settles again.
# Uses this checkout's target folder for the dependencies; only the
# workspace's crates build again (a clone is another path to cargo), and
# target/debug/lineage is the clone's build until the next cargo build here.
# .ci/run calls it after the tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR" ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "build-once check: $*" >&2; exit 1; }

git clone -q --no-local "$root" "$tmp/lineage"
cd "$tmp/lineage"
git config user.email ci@lineage.invalid
git config user.name "build-once check"
rm -f .git/packed-refs
branch=$(git symbolic-ref -q HEAD) || fail "the clone has a detached HEAD"
[ -f ".git/$branch" ] || fail "the clone's $branch is not a loose ref"

build() { cargo build --locked --bin lineage 2>&1; }
quiet_build() {
  local out
  out=$(build) || { echo "$out" >&2; fail "cargo build failed"; }
  if grep -q Compiling <<<"$out"; then
    echo "$out" >&2
    fail "$1: cargo compiled again although nothing changed"
  fi
}
manifest_commit() {
  local out="$tmp/run-$1"
  cargo run --locked --bin lineage -- run --generations 1 --quiet --out "$out" 2>"$tmp/stderr" ||
    { cat "$tmp/stderr" >&2; fail "cargo run failed"; }
  if grep -q Compiling "$tmp/stderr"; then
    cat "$tmp/stderr" >&2
    fail "$1: cargo run compiled again although nothing changed"
  fi
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["git_commit"])' "$out/manifest.json"
}

echo "== build once: loose refs only, first build"
build >/dev/null || { build >&2; fail "the first build failed"; }
quiet_build "second build, loose refs"
got=$(manifest_commit loose)
want=$(git rev-parse --short=12 HEAD)
[ "$got" = "$want" ] || fail "manifest.json names commit $got, HEAD is $want"

echo "== build once: after git commit --allow-empty"
git commit -q --allow-empty -m "build-once check"
build >/dev/null
quiet_build "second build after a commit"
got=$(manifest_commit committed)
want=$(git rev-parse --short=12 HEAD)
[ "$got" = "$want" ] || fail "after a commit manifest.json names $got, HEAD is $want"

echo "== build once: after git pack-refs --all"
git pack-refs --all
[ ! -f ".git/$branch" ] || fail "git pack-refs left $branch loose"
build >/dev/null
quiet_build "second build, packed refs"
got=$(manifest_commit packed)
[ "$got" = "$want" ] || fail "with packed refs manifest.json names $got, HEAD is $want"
echo "build-once check: a second build and a run compile nothing (loose refs, after a commit, packed refs); manifest.json names HEAD ($want)"
