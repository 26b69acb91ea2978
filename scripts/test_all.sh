#!/bin/bash
# make test: the suite on this machine's QGIS, then on QGIS 3.40 LTR (Debian 13 chroot, see
# scripts/qgis340.sh) when this machine can run it. QGIS340=0 skips the second, QGIS340=1
# requires it. Both pytest summary lines at the end; non-zero when either run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
QGIS340=${QGIS340:-auto}
mkdir -p test-output

# pytest's last line, "===== 70 passed in 55.1s =====" (or without the rules under -q)
summary() { grep -E '(passed|failed|error|errors|deselected|no tests ran).* in [0-9.]+s' "$1" 2>/dev/null | tail -1 | sed -E 's/^=+ | =+$//g'; }

host_qgis=$("$VENV/bin/python" -c 'from qgis.core import Qgis; print(Qgis.QGIS_VERSION.split("-")[0])' 2>/dev/null)
eval "\"\$VENV/bin/pytest\" -p no:cacheprovider ${PYTEST_ARGS:-} tests" 2>&1 | tee test-output/pytest-host.log
host=${PIPESTATUS[0]}

trixie=0
trixie_line="skipped (QGIS340=0)"
case "$QGIS340" in
0 | no | off) ;;
*)
    if reason=$(bash scripts/qgis340.sh available 2>&1); then
        echo "== the same suite on QGIS 3.40 LTR (Debian 13 chroot); skip with make test QGIS340=0"
        bash scripts/qgis340.sh test 2>&1 | tee test-output/pytest-qgis340.log
        trixie=${PIPESTATUS[0]}
        trixie_line=$(summary test-output/pytest-qgis340.log)
        trixie_line=${trixie_line:-"did not run (exit $trixie; see test-output/pytest-qgis340.log)"}
    else
        trixie_line="skipped: ${reason#qgis340: }"
        [ "$QGIS340" = 1 ] && trixie=1
    fi
    ;;
esac

echo
echo "QGIS ${host_qgis:-?} (this machine):   $(summary test-output/pytest-host.log)"
echo "QGIS 3.40 (Debian 13 chroot): $trixie_line"
[ "$host" = 0 ] && [ "$trixie" = 0 ]
