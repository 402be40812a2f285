#!/usr/bin/env bash
# Generates a signed Nextcloud-like core tree for the benchmarks.
# Usage: bench/gentree.sh BIN DIR FILES TOTAL_MB  (writes DIR and DIR.crt)
set -euo pipefail
bin=$1 dir=$2 files=$3 total_mb=$4
echo "generating $files files, ~$total_mb MB in $dir"
python3 - "$dir" "$files" "$total_mb" <<'PY'
import os, random, sys
root, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
random.seed(1)
# Sizes: mostly small PHP/JS files, a few large assets (log-normal-ish),
# scaled to the total.
sizes = [int(random.lognormvariate(8.5, 1.6)) + 1 for _ in range(n)]
scale = total / sum(sizes)
sizes = [max(1, int(s * scale)) for s in sizes]
block = os.urandom(1 << 20)
for i, s in enumerate(sizes):
    d = os.path.join(root, "lib", "d%03d" % (i % 300), "s%02d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.php" % i), "wb") as f:
        while s > 0:
            k = min(s, len(block))
            f.write(block[:k])
            s -= k
open(os.path.join(root, "version.php"), "w").write("<?php $OC_Channel = 'stable';\n")
PY
du -sh "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir.key" -out "$dir.crt" -subj /CN=core -days 1 2>/dev/null
mkdir -p "$dir/core"
mkdir -p "$dir/resources/codesigning" # the install's own copy of the trust anchor, as in Nextcloud
cp "$dir.crt" "$dir/resources/codesigning/root.crt"
"$bin" sign-core --path "$dir" --privateKey "$dir.key" --certificate "$dir.crt" >/dev/null
sync
rm -f "$dir.key"
