#!/bin/sh
# The docs that code generates or shows must match the code:
# docs/configuration.md is what the property table generates, and the
# README's C example is examples/hello.c (which the install test builds).
gen=${GEN_CONFIGURATION:-./docs/gen_configuration}
top=${top_srcdir:-.}
passed=0
failed=0
if "$gen" | diff -u "$top/docs/configuration.md" - ; then
  passed=$((passed + 1))
else
  echo "docs/configuration.md drifted from src/api/conf.c: run 'make docs'"
  failed=$((failed + 1))
fi
readme_example=$(awk '/^```c$/ {inside = 1; next} inside && /^```$/ {exit} inside' "$top/README.md")
if printf '%s\n' "$readme_example" | diff -u "$top/examples/hello.c" - ; then
  passed=$((passed + 1))
else
  echo "README.md's C example differs from examples/hello.c"
  failed=$((failed + 1))
fi
echo "[  PASSED  ] $passed test(s)."
if [ "$failed" -ne 0 ]; then
  echo "[  FAILED  ] $failed test(s)."
  exit 1
fi
