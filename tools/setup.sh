#!/usr/bin/env bash
# Installs what zinf needs on Debian 12 / Ubuntu (only the packages that are
# missing), then configures and builds zinf in ./build (Release, Ninja).
#   tools/setup.sh            # install + build
#   ZINF_BUILD_DIR=dir tools/setup.sh
# On an offline GPU host use shared/gpu/fetch-deps.sh + gpu-env.sh instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(build-essential cmake ninja-build pkg-config libtorch-dev libcli11-dev nlohmann-json3-dev
          libyaml-cpp-dev libspdlog-dev liburing-dev doctest-dev libgloo-dev python3
          libpcre2-dev libutf8proc-dev libsentencepiece-dev)
packages+=(chromium)  # the headless browser of tests/cli/plot_test.cpp (zinf plot)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "zinf setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir=${ZINF_BUILD_DIR:-build}
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$jobs"
echo "zinf setup: built $build_dir/zinf"
