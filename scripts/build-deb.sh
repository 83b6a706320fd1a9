#!/usr/bin/env bash
# Builds the Debian packages pivitals-agent and pivitals-primary with dpkg-deb from binaries
# already built, staging each package's tree from deploy/debian/<package>/.
#
#   scripts/build-deb.sh [--target TRIPLE] [--bin-dir DIR] [--out DIR] [--compression C]
#                        [PACKAGE...]
#
#   --target TRIPLE  binaries from target/TRIPLE/release (cross builds), and the Debian
#                    architecture from the triple (x86_64 amd64, aarch64 arm64,
#                    armv7-*-gnueabihf and arm-*-gnueabihf armhf, arm-*-gnueabi armel)
#   --bin-dir DIR    binaries from DIR instead (target/debug for a quick local package)
#   --out DIR        where the .deb files go (default target/debian)
#   --compression C  dpkg-deb's -Z: xz (default), gzip, zstd or none (quick local tests)
#   PACKAGE          pivitals-agent and/or pivitals-primary (default both)
#
# Without --target the binaries come from target/release and the architecture is this
# machine's (dpkg --print-architecture). Prints the path of each package built.
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
bin_dir=""
out="target/debian"
compression=xz
packages=()
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --compression) compression=$2; shift 2 ;;
    pivitals-agent | pivitals-primary) packages+=("$1"); shift ;;
    *) echo "build-deb: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -gt 0 ] || packages=(pivitals-agent pivitals-primary)

if [ -n "$target" ]; then
  case $target in
    x86_64-*) arch=amd64 ;;
    aarch64-*) arch=arm64 ;;
    armv7-*-gnueabihf | arm-*-gnueabihf) arch=armhf ;;
    arm-*-gnueabi | armv5te-*-gnueabi) arch=armel ;;
    *) echo "build-deb: no Debian architecture for the target $target" >&2; exit 2 ;;
  esac
  [ -n "$bin_dir" ] || bin_dir="target/$target/release"
else
  arch=$(dpkg --print-architecture)
  [ -n "$bin_dir" ] || bin_dir="target/release"
fi

# The workspace's version, from [workspace.package].
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }

mkdir -p "$out"
for package in "${packages[@]}"; do
  binary="$bin_dir/$package"
  [ -x "$binary" ] || { echo "build-deb: $binary is missing; build it first" >&2; exit 1; }
  source_dir="deploy/debian/$package"
  stage=$(mktemp -d)
  chmod 0755 "$stage"
  trap 'rm -rf "$stage"' EXIT

  install -D -m 0755 "$binary" "$stage/usr/bin/$package"
  install -D -m 0644 "$source_dir/$package.service" "$stage/lib/systemd/system/$package.service"
  case $package in
    pivitals-agent) settings=agent.toml ;;
    pivitals-primary) settings=primary.env ;;
  esac
  install -D -m 0600 "$source_dir/$settings" "$stage/etc/pivitals/$settings"
  install -D -m 0644 README.md "$stage/usr/share/doc/$package/README.md"

  mkdir -p "$stage/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    "$source_dir/control" >"$stage/DEBIAN/control"
  install -m 0644 "$source_dir/conffiles" "$stage/DEBIAN/conffiles"
  for script in postinst prerm postrm; do
    install -m 0755 "$source_dir/$script" "$stage/DEBIAN/$script"
  done

  deb="$out/${package}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group "-Z$compression" --build "$stage" "$deb" >/dev/null
  rm -rf "$stage"
  trap - EXIT
  echo "$deb"
done
