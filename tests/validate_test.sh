#!/bin/sh
# End-to-end test of `make validate` on the smallest setup: stories260K (or the fixture when
# ../shared is absent), one quantized type, 2 windows of 64 tokens, a short bench, the model-tensor
# bit-exactness only (GENERIC=0) and the existing llvm-mca figures (CYCLES=0), into temp folders.
# Checks the report opens with the filled table, holds no "todo", and report.json parses (read back
# with `kq report`'s own reader: a second report from the first's inputs, and grep of its keys).
# usage: sh tests/validate_test.sh [path/to/kq]   (from the repo root; about 30-60 s)
set -u
KQ_BIN=${1:-build/host/kq}
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skipped() { skip=$((skip + 1)); echo "SKIP $*"; }
finish() { echo "$pass passed, $fail failed, $skip skipped"; [ $fail = 0 ]; exit $?; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$(uname -m)" != aarch64 ] && [ ! -x build/aarch64/kq ]; then
    skipped "validate: build/aarch64/kq not built (make ARCH=aarch64)"; finish
fi
for cmd in report perplexity bench; do
    if "$KQ_BIN" $cmd --help 2>&1 | grep -q "unknown command"; then
        skipped "validate: kq $cmd is not dispatched by this binary yet (cli/main.c)"; finish
    fi
done

KQ_BIN_ABS=$(cd "$(dirname "$KQ_BIN")" && pwd)/$(basename "$KQ_BIN")
env KQ_BIN="$KQ_BIN_ABS" KQ_WORK="$tmp/work" KQ_CACHE="$tmp/models" KQ_REPORTS="$tmp/reports" \
    QTYPES=q4_0 CTX=64 CHUNKS=2 BENCH="-p 16 -n 4 -r 6 --bw-mib 16" GENERIC=0 CYCLES=0 \
    sh validation/validate.sh >"$tmp/out.txt" 2>"$tmp/err.txt"
rc=$?
if [ $rc = 0 ]; then ok; else bad "validate.sh exit $rc: $(tail -5 "$tmp/out.txt")"; fi
model=$(ls "$tmp/reports" 2>/dev/null | head -1)
md=$tmp/reports/$model/report.md
js=$tmp/reports/$model/report.json
if [ -f "$md" ]; then ok; else bad "no report.md under $tmp/reports"; finish; fi

# the report opens with the guides' table, filled
first=$(head -1 "$md")
case $model in stories260k) want='| Model | Measure | F32 | F16 | Q4_0 |' ;; *) want='| Model | Measure | F16 | Q4_0 |' ;; esac
if [ "$first" = "$want" ]; then ok; else bad "first line '$first', expected '$want'"; fi
for row in perplexity "file size" ms/tok; do
    line=$(sed -n '3,5p' "$md" | grep "^| $model | $row |")
    if [ -n "$line" ] && ! echo "$line" | grep -q "not measured"; then ok; else bad "table row '$row': '$line'"; fi
done
if sed -n 3p "$md" | grep -Eq '\| [0-9]+\.[0-9]+ ± [0-9]+\.[0-9]+ \|'; then ok; else bad "perplexity cells are 'x ± se'"; fi
if grep -qi todo "$md"; then bad "report.md still says todo"; else ok; fi
if grep -q "not measured" "$md"; then bad "report.md has figures not measured: $(grep -m2 'not measured' "$md")"; else ok; fi
for sec in "## Against F16" "## Per-tensor quantization error" "## Kunpeng 920 cycle estimates" "## Bit-exactness" \
    "## Host" "## Versions" "## Reproduce" "host timings"; do
    if grep -q "$sec" "$md"; then ok; else bad "report.md lacks '$sec'"; fi
done
for f in ppl_vs_bpw ms_vs_size tensor_error; do
    if command -v gnuplot >/dev/null 2>&1; then
        if [ -s "$tmp/reports/$model/$f.png" ] && [ -s "$tmp/reports/$model/$f.svg" ]; then ok; else bad "chart $f missing"; fi
    else
        skipped "chart $f: gnuplot not installed"
    fi
done
if ls "$tmp/reports/$model" | grep -q kqtmp; then bad "temporary files left in the report folder"; else ok; fi

# report.json: parses (kq report reads it back as JSON via cJSON when used as a manifest: it must
# find the model and columns), and holds the figures
mkdir -p "$tmp/w2"
cp "$js" "$tmp/w2/manifest.json"
if "$KQ_BIN" report -w "$tmp/w2" -o "$tmp/r2" --no-charts --quiet 2>"$tmp/r2.err" &&
    head -1 "$tmp/r2/report.md" | grep -q "| Model | Measure |"; then ok; else bad "report.json does not parse as JSON: $(cat "$tmp/r2.err")"; fi
for key in '"table"' '"ppl"' '"ppl_stderr"' '"file_size"' '"ms_per_token"' '"kld"' '"bits_per_weight"' \
    '"roofline_fraction"' '"tolerance_model"' '"kunpeng_cycles"' '"bitexact"'; do
    if grep -q "$key" "$js"; then ok; else bad "report.json lacks $key"; fi
done
# a second run reuses the converted files
env KQ_BIN="$KQ_BIN_ABS" KQ_WORK="$tmp/work" KQ_CACHE="$tmp/models" KQ_REPORTS="$tmp/reports" \
    QTYPES=q4_0 CTX=64 CHUNKS=2 BENCH="-p 16 -n 4 -r 6 --bw-mib 16" GENERIC=0 CYCLES=0 \
    sh validation/validate.sh >"$tmp/out2.txt" 2>&1
if grep -q "convert q4_0 .*cached" "$tmp/out2.txt"; then ok; else bad "second run did not reuse the cache"; fi
finish
