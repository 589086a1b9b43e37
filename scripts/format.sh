#!/usr/bin/env bash
# Formats every C source and header with the repository's .clang-format (the host build's
# format_check test fails on anything this would change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
git ls-files -z -- 'include/*.h' 'src/*.[ch]' 'tests/*.[ch]' 'tools/*.[ch]' 'examples/*.[ch]' |
  xargs -0 clang-format --style=file -i
