#!/usr/bin/env bash
# Formats every C and C++ source and header (xmmap.hpp, tests/cxx, the bench's C++ part) with the repository's .clang-format (the host build's
# format_check test fails on anything this would change).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
git ls-files -z -- 'include/*.h' 'include/*.hpp' 'src/*.[ch]' 'tests/*.[ch]' 'tests/*.cpp' 'tools/*.[ch]' \
  'tools/*.cpp' 'examples/*.[ch]' |
  xargs -0 clang-format --style=file -i
