#!/bin/sh
# The Kunpeng 920 cycle estimates stay measurable: every required NEON hot loop carries its llvm-mca
# region, each region is a straight-line body whose instruction count llvm-mca agrees with, and the
# JSON is written. (The figures themselves are reported by `make kunpeng-cycles`, not asserted here.)
set -u
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
if ! command -v llvm-mca >/dev/null 2>&1 || { [ "$(uname -m)" != aarch64 ] && ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; }; then
    echo "SKIP kunpeng-cycles: llvm-mca or the aarch64 compiler is missing"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if sh validation/kunpeng_cycles.sh "$out/mca" >"$out/log" 2>&1; then ok; else bad "kunpeng_cycles.sh failed:"; tail -n 20 "$out/log"; fi
json=$out/mca/kunpeng-cycles.json
for k in vec_dot_q4_0_q8_0 vec_dot_q4_1_q8_1 vec_dot_q5_0_q8_0 vec_dot_q5_1_q8_1 vec_dot_q8_0_q8_0 \
         vec_dot_q4_K_q8_K vec_dot_q5_K_q8_K vec_dot_q6_K_q8_K; do
    for impl in neon-dotprod neon-plain; do
        name=$k
        [ $impl = neon-plain ] && case $k in *_K_*) name=${k}_plain ;; esac
        if grep -q "\"name\":\"$name\",\"impl\":\"$impl\"" "$json" 2>/dev/null; then ok; else bad "no $impl region for $name in $json"; fi
    done
done
for k in quantize_row_q8_0 quantize_row_q8_1 quantize_row_q8_K; do
    if grep -q "\"name\":\"$k\",\"impl\":\"neon-plain\"" "$json" 2>/dev/null; then ok; else bad "no region for $k"; fi
done
for k in vec_dot_q4_0_q8_0 quantize_row_q8_0; do
    if grep -q "\"name\":\"$k\",\"impl\":\"reference\"" "$json" 2>/dev/null; then ok; else bad "no reference region for $k"; fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
