#!/usr/bin/env bash
# Packs what `corestore bench` needs for a Linux machine without network access into one
# folder: the stripped corestore and corestore-bench binaries, fio and nginx with the dynamic
# loader and every library they link (so the target's own libc version does not matter), and
# the static etcd/etcdctl. On the target: `source DIR/setup.sh`, then run `DIR/corestore-bench …`.
#
#   bench/scripts/pack-offline.sh OUT_DIR     (after `cargo build --release`; fio, nginx,
#                                              etcd and etcdctl installed here)
#
# Used in session 5 to run the benchmarks on a borrowed 16-core machine
# (bench/results/2026-11-25-16core).
set -euo pipefail
out=${1:?usage: pack-offline.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for b in corestore corestore-bench; do
  strip -o "$out/$b" "$root/target/release/$b"
done

mkdir -p "$work/lib"
for tool in fio nginx; do
  path=$(command -v "$tool")
  cp "$path" "$out/$tool.real"
  ldd "$path" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }' | sort -u | while read -r lib; do
    cp -L "$lib" "$work/lib/"
  done
done
tar -C "$work" -cJf "$out/libs.tar.xz" lib

mkdir -p "$work/etcd"
cp "$(command -v etcd)" "$(command -v etcdctl)" "$work/etcd/"
tar -C "$work/etcd" -cJf "$out/etcd.tar.xz" .

cat > "$out/setup.sh" <<'SETUP'
# Sourced on the target: the packed tools on PATH; fio and nginx run through the packed loader
# and libraries.
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=${TMPDIR:-/tmp}/corestore-offline
mkdir -p "$T/bin" && tar -C "$T" -xJf "$D/libs.tar.xz" && tar -C "$T/bin" -xJf "$D/etcd.tar.xz"
loader=$(ls "$T"/lib/ld-linux-*.so.* | head -1)
for t in fio nginx; do
  printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' "$loader" "$T/lib" "$D/$t.real" > "$T/bin/$t"
  chmod +x "$T/bin/$t"
done
export PATH="$T/bin:$PATH"
SETUP
du -sh "$out"
