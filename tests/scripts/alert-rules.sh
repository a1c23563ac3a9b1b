#!/bin/bash
# The alerting rules the package ships as an example (etc/prometheus/, installed under
# /usr/share/doc/reconcile-after-upgrade/examples/): Prometheus's own promtool accepts them, and its rule unit
# tests (tests/prometheus/alerts.test.yml) have each alert firing where it must and silent where it must not.
. "$(dirname "$0")/../lib.sh"
PROMTOOL=${RAU_PROMTOOL:-$(command -v promtool || echo /var/cache/reconcile-after-upgrade-tests/promtool/usr/bin/promtool)}
[ -x "$PROMTOOL" ] || bail "no promtool (tests/install-deps takes it out of Debian's prometheus package)"
rules=$top_srcdir/etc/prometheus/reconcile-after-upgrade.rules.yml

out=$("$PROMTOOL" check rules "$rules" 2>&1)
check "promtool check rules: 3 rules, valid" grep -q "SUCCESS: 3 rules found" <<<"$out"
out=$(cd "$top_srcdir/tests/prometheus" && "$PROMTOOL" test rules alerts.test.yml 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "promtool test rules: every alert fires where it must and nowhere else" test "$rc" -eq 0
tap_done
