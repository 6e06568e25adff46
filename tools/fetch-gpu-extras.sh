#!/usr/bin/env bash
# Adds the Debian packages zinf needs beyond shared/gpu/fetch-deps.sh's bundle
# (tokenizers: PCRE2 for pre-tokenizer regexes, utf8proc for Unicode
# normalization, SentencePiece) to .gpu-deps/debs, so an offline GPU host
# builds the same binary. Run from the project root after fetch-deps.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pkgs=(libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      libutf8proc-dev libutf8proc2 libsentencepiece-dev libsentencepiece0)
mkdir -p .gpu-deps/debs
(cd .gpu-deps/debs && apt-get download "${pkgs[@]}" 2>&1 | grep -v "unsandboxed" || true)
echo "added ${#pkgs[@]} packages to .gpu-deps/debs ($(du -sh .gpu-deps | cut -f1))"
