#!/bin/sh
# docs/configuration.md must be what the property table generates.
gen=${GEN_CONFIGURATION:-./docs/gen_configuration}
doc=${top_srcdir:-.}/docs/configuration.md
if "$gen" | diff -u "$doc" - ; then
  echo "[  PASSED  ] 1 test(s)."
else
  echo "docs/configuration.md drifted from src/conf.c: run 'make docs'"
  echo "[  FAILED  ] 1 test(s)."
  exit 1
fi
