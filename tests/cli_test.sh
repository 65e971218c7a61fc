#!/bin/sh
# kq CLI tests: golden vectors through quantize-raw / dequantize-raw, the checks, and bad input.
# usage: [KQ_RUN="qemu-aarch64 -cpu neoverse-n1"] sh tests/cli_test.sh path/to/kq LABEL
set -u
KQ_BIN=$1
RUN=${KQ_RUN:-}
kq() { $RUN "$KQ_BIN" "$@"; }
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skipped() { skip=$((skip + 1)); echo "SKIP $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shared=${KQ_SHARED:-../shared}
golden=$shared/golden

is_aarch64=0
kq --version | grep -q '^target: aarch64' && is_aarch64=1
impls="reference"
[ $is_aarch64 = 1 ] && impls="reference neon neon-plain"

# --- golden vectors: ggml's own bytes, byte for byte ---
if [ -f "$golden/input.f32" ]; then
    for impl in $impls; do
        for t in q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q2_K q3_K q4_K q5_K q6_K q8_K f16 bf16; do
            [ -f "$golden/$t.bin" ] || { skipped "golden $t: $golden/$t.bin not found"; continue; }
            if kq quantize-raw -t "$t" --impl "$impl" "$golden/input.f32" "$tmp/$t.bin" &&
                cmp -s "$tmp/$t.bin" "$golden/$t.bin"; then ok; else bad "quantize-raw -t $t --impl $impl differs from $golden/$t.bin"; fi
            [ -f "$golden/$t.deq.f32" ] || continue
            if kq dequantize-raw -t "$t" --impl "$impl" "$golden/$t.bin" "$tmp/$t.f32" &&
                cmp -s "$tmp/$t.f32" "$golden/$t.deq.f32"; then ok; else bad "dequantize-raw -t $t --impl $impl differs from $golden/$t.deq.f32"; fi
        done
    done
    # any case is accepted
    if kq quantize-raw -t Q4_0 "$golden/input.f32" "$tmp/u.bin" && cmp -s "$tmp/u.bin" "$golden/q4_0.bin"; then ok; else bad "type name Q4_0 (upper case)"; fi
else
    skipped "golden vectors: $golden/input.f32 not found (clone ../shared beside the repo)"
fi

# --- the checks ---
if [ $is_aarch64 = 1 ]; then
    if kq check bitexact --impl neon --quick >"$tmp/be.txt" 2>&1; then ok; else bad "check bitexact --impl neon:"; tail -n 30 "$tmp/be.txt"; fi
    if kq check bitexact --impl neon-plain --quick >"$tmp/be2.txt" 2>&1; then ok; else bad "check bitexact --impl neon-plain:"; tail -n 30 "$tmp/be2.txt"; fi
    # the static cross build has no GSL/cJSON: tolerance must say so, not pretend
    if kq --version | grep -q 'GSL no'; then
        kq check tolerance >/dev/null 2>"$tmp/tol.err"; rc=$?
        if [ $rc = 2 ] && grep -q 'not in this build' "$tmp/tol.err"; then ok; else bad "check tolerance without GSL: exit $rc"; fi
    fi
else
    if kq check bitexact --impl reference --quick >"$tmp/be.txt" 2>&1; then ok; else bad "check bitexact --impl reference"; tail -n 20 "$tmp/be.txt"; fi
    kq check bitexact --impl neon >/dev/null 2>"$tmp/be.err"; rc=$?
    if [ $rc = 2 ] && grep -qi 'unavailable' "$tmp/be.err"; then ok; else bad "check bitexact --impl neon on a non-ARM host: exit $rc"; fi
    if kq check tolerance >"$tmp/tol.txt" 2>&1; then ok; else bad "check tolerance:"; tail -n 30 "$tmp/tol.txt"; fi
fi

# --- bad input: one-line error, non-zero exit, no output file ---
printf 'x' >"$tmp/one.byte"
# 2 rows of 64 floats
awk 'BEGIN { for (i = 0; i < 128; i++) printf "%c%c%c%c", 0, 0, 128, 63 }' >"$tmp/ones.f32" # 1.0f
expect_err() { # expect_err NAME EXIT-CODE OUT ARGS...
    name=$1 want=$2 out=$3; shift 3
    rm -f "$out"
    kq "$@" >"$tmp/stdout" 2>"$tmp/stderr"; rc=$?
    lines=$(wc -l <"$tmp/stderr")
    if [ "$rc" != "$want" ]; then bad "$name: exit $rc, expected $want"; return; fi
    if [ "$lines" != 1 ]; then bad "$name: expected a one-line error, got $lines lines"; cat "$tmp/stderr"; return; fi
    if ls "$out"* >/dev/null 2>&1; then bad "$name: left an output file behind"; return; fi
    ok
}
expect_err "unknown type" 2 "$tmp/o1" quantize-raw -t q9_9 --row 64 "$tmp/ones.f32" "$tmp/o1"
expect_err "row not a block multiple" 2 "$tmp/o2" quantize-raw -t q4_0 --row 48 "$tmp/ones.f32" "$tmp/o2"
expect_err "row not a k-block multiple" 2 "$tmp/o3" quantize-raw -t q4_K --row 64 "$tmp/ones.f32" "$tmp/o3"
expect_err "truncated input" 2 "$tmp/o4" quantize-raw -t q8_0 --row 64 "$tmp/one.byte" "$tmp/o4"
expect_err "input not whole rows" 2 "$tmp/o5" quantize-raw -t q8_0 --row 96 "$tmp/ones.f32" "$tmp/o5"
expect_err "missing input" 2 "$tmp/o6" quantize-raw -t q8_0 --row 64 "$tmp/nope.f32" "$tmp/o6"
expect_err "unknown impl" 2 "$tmp/o7" quantize-raw -t q8_0 --impl fast --row 64 "$tmp/ones.f32" "$tmp/o7"
expect_err "missing -t" 2 "$tmp/o8" quantize-raw --row 64 "$tmp/ones.f32" "$tmp/o8"
expect_err "bad --row" 2 "$tmp/o9" quantize-raw -t q8_0 --row -3 "$tmp/ones.f32" "$tmp/o9"
expect_err "q8_1 has no dequantizer" 2 "$tmp/o10" dequantize-raw -t q8_1 --row 64 "$tmp/ones.f32" "$tmp/o10"
expect_err "truncated blocks" 2 "$tmp/o11" dequantize-raw -t q4_0 --row 64 "$tmp/one.byte" "$tmp/o11"
expect_err "--scale on a ggml type" 2 "$tmp/o12" quantize-raw -t q4_0 --scale max --row 64 "$tmp/ones.f32" "$tmp/o12"
expect_err "unknown command" 2 "$tmp/o13" frobnicate
# NaN in row 1, column 5 (0x7fc00000)
awk 'BEGIN { for (i = 0; i < 128; i++) if (i == 69) printf "%c%c%c%c", 0, 0, 192, 127; else printf "%c%c%c%c", 0, 0, 128, 63 }' >"$tmp/nan.f32"
expect_err "NaN input" 2 "$tmp/o14" quantize-raw -t q4_0 --row 64 "$tmp/nan.f32" "$tmp/o14"
if grep -q 'row 1, column 5 is NaN' "$tmp/stderr"; then ok; else bad "NaN error does not name row 1, column 5: $(cat "$tmp/stderr")"; fi
# f16 converts NaN exactly (it is a conversion, not a quantizer)
if kq quantize-raw -t f16 --row 64 "$tmp/nan.f32" "$tmp/nan.f16"; then ok; else bad "f16 of a NaN row should convert"; fi
# a failing run keeps an existing output intact
printf 'keep' >"$tmp/keep"
kq quantize-raw -t q4_0 --row 48 "$tmp/ones.f32" "$tmp/keep" 2>/dev/null
if [ "$(cat "$tmp/keep")" = keep ] && [ "$(ls "$tmp" | grep -c kqtmp)" = 0 ]; then ok; else bad "a failed run touched the existing output or left a temp file"; fi

# --- GGUF: inspect a file written by other tools, and one kq converts ---
s260=$shared/models/stories260K
if [ -f "$s260/stories260K.gguf" ]; then
    if kq inspect "$s260/stories260K.gguf" >"$tmp/insp.txt" && grep -q 'tensors: 48' "$tmp/insp.txt" &&
        grep -q 'blk.4.ffn_down.weight' "$tmp/insp.txt"; then ok; else bad "kq inspect stories260K.gguf"; fi
    if kq inspect --json "$s260/stories260K.gguf" | grep -q '"parameters": 292800'; then ok; else bad "kq inspect --json stories260K.gguf"; fi
else
    skipped "stories260K: $s260/stories260K.gguf not found"
fi
if [ -f "$s260/stories260K.bin" ] && [ -f "$s260/tok512.bin" ]; then
    if kq convert "$s260/stories260K.bin" --vocab "$s260/tok512.bin" -t q4_0 -o "$tmp/s.gguf" 2>"$tmp/conv.err"; then
        # ffn_down rows are 172 wide: q4_0 cannot hold them, f16 takes them, and inspect says so
        if kq inspect "$tmp/s.gguf" | grep -q 'ffn_down.weight.*f16.*fallback: q4_0'; then ok; else bad "inspect does not show the f16 fallback of ffn_down"; fi
    else
        bad "kq convert stories260K.bin -t q4_0: $(cat "$tmp/conv.err")"
    fi
else
    skipped "stories260K: $s260/stories260K.bin or tok512.bin not found"
fi
expect_err "inspect a non-GGUF file" 2 "$tmp/o15" inspect "$tmp/ones.f32"

# --- round trip and --help on every command ---
if kq quantize-raw -t i4_g128_asym --row 128 "$tmp/ones.f32" "$tmp/i4.bin" && kq dequantize-raw -t i4_g128_asym --row 128 "$tmp/i4.bin" "$tmp/i4.f32" && cmp -s "$tmp/i4.f32" "$tmp/ones.f32"; then ok; else bad "i4_g128_asym round trip of constant 1.0 is not exact"; fi
if kq quantize-raw -t i2_row_asym --scale max --row 64 "$tmp/ones.f32" "$tmp/i2.bin"; then ok; else bad "--scale max on an INT-N type"; fi
for c in types quantize-raw dequantize-raw "check bitexact" "check tolerance" check inspect convert quantize fixtures; do
    # shellcheck disable=SC2086
    if kq $c --help 2>&1 | grep -qiE 'usage|not in this build'; then ok; else bad "kq $c --help prints no usage"; fi
done
if kq --help | grep -q quantize-raw; then ok; else bad "kq --help"; fi
if kq types --json | grep -q '"q4_0"'; then ok; else bad "kq types --json"; fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
