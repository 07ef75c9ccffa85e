#!/usr/bin/env bash
# Release archives: scripts/dist.sh [TARGET...]
#
# Builds each TARGET (default: the four below) with `cargo zigbuild --release --locked` and
# leaves in dist/:
#   sipgateio-callevents-VERSION-TARGET.tar.gz   a folder of that name holding the binary,
#                                                README.md, LICENSE, .env.example and
#                                                examples/call-rules.toml
#   SHA256SUMS                                   for `cd dist && sha256sum -c SHA256SUMS`
#   linux-amd64/sipgateio-callevents             the bare binaries of the Linux targets, named
#   linux-arm64/sipgateio-callevents             by Docker's TARGETARCH for the Dockerfile
# zig links every target, so one Linux machine builds them all, macOS included. Missing
# rustup targets, cargo-zigbuild and zig are installed (rustup, pip); a tool that cannot be
# installed stops the script with its name. The Linux binaries are checked to be static.
# CARGO_TARGET_DIR is respected, and DIST_DIR puts the output elsewhere than dist/ (CI
# does, see .ci/platforms.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly NAME=sipgateio-callevents
readonly DEFAULT_TARGETS=(
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  x86_64-apple-darwin
  aarch64-apple-darwin
)

fail() {
  echo "dist.sh: error: $*" >&2
  exit 1
}

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${DEFAULT_TARGETS[@]}")
fi
for target in "${targets[@]}"; do
  case " ${DEFAULT_TARGETS[*]} " in
    *" $target "*) ;;
    *) fail "unknown target \"$target\"; dist.sh builds ${DEFAULT_TARGETS[*]}" ;;
  esac
done

# The [package] table comes first in Cargo.toml, so the first version line is the crate's.
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || fail "no version = \"...\" line in Cargo.toml"

for tool in cargo rustup tar gzip sha256sum readelf; do
  command -v "$tool" >/dev/null 2>&1 ||
    fail "$tool is missing; install it (rustup from https://rustup.rs, the others from the system's packages: tar, gzip, coreutils, binutils)"
done

installed_targets=$(rustup target list --installed)
for target in "${targets[@]}"; do
  if ! grep -qx "$target" <<<"$installed_targets"; then
    echo "dist.sh: adding the Rust target $target" >&2
    rustup target add "$target" || fail "rustup target add $target failed"
  fi
done

# cargo-zigbuild finds zig on PATH or as the ziglang Python package (python3 -m ziglang).
have_zig() {
  command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' >/dev/null 2>&1
}
if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! have_zig; then
  command -v python3 >/dev/null 2>&1 ||
    fail "cargo-zigbuild and zig are missing, and python3 to install them with pip; install python3 and pip, or cargo-zigbuild (cargo install --locked cargo-zigbuild) and zig (https://ziglang.org/download/)"
  echo "dist.sh: installing cargo-zigbuild and zig: python3 -m pip install ziglang cargo-zigbuild" >&2
  python3 -m pip install --quiet ziglang cargo-zigbuild ||
    fail "python3 -m pip install ziglang cargo-zigbuild failed (see above; a system Python may refuse it, PEP 668); install both in a virtual environment on PATH (python3 -m venv DIR && DIR/bin/pip install ziglang cargo-zigbuild), or cargo-zigbuild with cargo install --locked cargo-zigbuild and zig from https://ziglang.org/download/"
  hash -r
  command -v cargo-zigbuild >/dev/null 2>&1 ||
    fail "cargo-zigbuild was installed but is not on PATH; add pip's script directory (python3 -m site --user-base, then /bin) to PATH"
  have_zig || fail "zig is still missing after pip install ziglang"
fi

# Where cargo puts its output: CARGO_TARGET_DIR, a build.target-dir of a config file, or
# target/; cargo metadata knows which.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || fail "cargo metadata named no target directory"

# The files' time in the archives: SOURCE_DATE_EPOCH, else the last commit's.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# rustc asks Xcode's xcrun for the macOS SDK to hand to the linker, and warns when there is
# none; zig links against the macOS stubs it bundles and needs no SDK. An existing
# directory in SDKROOT is taken as the SDK without asking, so an empty one keeps the build
# free of that warning. An SDKROOT of your own is kept.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sdk_stand_in=""
if [ -z "${SDKROOT:-}" ] && ! command -v xcrun >/dev/null 2>&1; then
  sdk_stand_in="$work/no-sdk"
  mkdir "$sdk_stand_in"
fi

dist=${DIST_DIR:-dist}
mkdir -p "$dist"
for target in "${targets[@]}"; do
  echo "dist.sh: building $target" >&2
  started=$SECONDS
  build_env=()
  case "$target" in
    *-apple-darwin) [ -z "$sdk_stand_in" ] || build_env=("SDKROOT=$sdk_stand_in") ;;
  esac
  env "${build_env[@]}" cargo zigbuild --release --locked --target "$target" ||
    fail "cargo zigbuild --release --locked --target $target failed (see above)"
  echo "dist.sh: built $target in $((SECONDS - started)) s" >&2
  binary="$target_dir/$target/release/$NAME"
  [ -f "$binary" ] || fail "the build left no binary at $binary"

  # The binary names its target in --version (build.rs); asked where it can run here.
  if [ "$target" = "$(uname -m)-unknown-linux-musl" ] && [ "$(uname -s)" = Linux ]; then
    said=$("$binary" --version)
    [ "$said" = "$NAME $version ($target)" ] ||
      fail "$binary --version says \"$said\", not \"$NAME $version ($target)\""
  fi

  case "$target" in
    *-linux-*)
      # A static binary has no program interpreter and needs no shared library: it runs
      # in an empty root or a FROM scratch image.
      if readelf -lW "$binary" | grep -q 'INTERP'; then
        fail "$binary has a program interpreter (INTERP): it is not static"
      fi
      if readelf -dW "$binary" | grep -q '(NEEDED)'; then
        fail "$binary needs shared libraries: $(readelf -dW "$binary" | grep '(NEEDED)' | tr -s ' ' | tr '\n' ';')"
      fi
      case "$target" in
        x86_64-*) arch=amd64 ;;
        aarch64-*) arch=arm64 ;;
      esac
      mkdir -p "$dist/linux-$arch"
      cp "$binary" "$dist/linux-$arch/$NAME"
      ;;
  esac

  folder="$NAME-$version-$target"
  staging="$work/$target"
  mkdir -p "$staging/$folder/examples"
  cp "$binary" README.md LICENSE .env.example "$staging/$folder/"
  cp examples/call-rules.toml "$staging/$folder/examples/"
  # Owner, order and times fixed, so the same binary gives the same archive.
  tar --create --file - --directory "$staging" \
    --owner=0 --group=0 --numeric-owner --sort=name --mtime="@$epoch" "$folder" |
    gzip --no-name --best >"$dist/$folder.tar.gz"
  echo "dist.sh: $dist/$folder.tar.gz ($(wc -c <"$dist/$folder.tar.gz") bytes)" >&2
done

# The sums cover every archive of this version in the folder, also those of an earlier
# run for other targets, so one SHA256SUMS describes it.
(
  cd "$dist"
  sha256sum "$NAME-$version-"*.tar.gz >SHA256SUMS
  sha256sum --check --quiet SHA256SUMS
)
echo "dist.sh: $dist/SHA256SUMS lists $(wc -l <"$dist/SHA256SUMS") archive(s)" >&2
