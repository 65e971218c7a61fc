#!/bin/sh
# kq tokenize: the CLI contract, its errors, and (when SentencePiece's spm_encode is installed) the ids of
# the first 200 lines of both shared texts against SentencePiece's own, line by line.
# usage: [KQ_RUN="qemu-aarch64 -cpu neoverse-n1"] sh tests/tokenize_test.sh path/to/kq [path/to/test_tokenizer_engine]
#   test_tokenizer_engine (default: beside kq, in tests/) writes the SentencePiece model of tok512.
set -u
KQ_BIN=$1
TEST_BIN=${2:-$(dirname "$1")/tests/test_tokenizer_engine}
RUN=${KQ_RUN:-}
kq() { $RUN "$KQ_BIN" "$@"; }
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skipped() { skip=$((skip + 1)); echo "SKIP $*"; }
finish() { echo "$pass passed, $fail failed, $skip skipped"; [ "$fail" = 0 ]; exit $?; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

shared=${KQ_SHARED:-../shared}
model=$shared/models/stories260K/stories260K.gguf
if [ ! -f "$model" ]; then
    skipped "stories260K: $model not found"
    finish
fi

# expect NAME WANT ARGS...: stdout of kq tokenize must be exactly WANT (one line)
expect() {
    name=$1 want=$2; shift 2
    got=$(kq tokenize "$@" 2>"$tmp/err"); rc=$?
    if [ $rc = 0 ] && [ "$got" = "$want" ]; then ok; else bad "$name: exit $rc, got '$got', want '$want' $(cat "$tmp/err")"; fi
}
# expect_fail NAME NEEDLE ARGS...: exit 2, one line on stderr containing NEEDLE, nothing on stdout
expect_fail() {
    name=$1 needle=$2; shift 2
    kq tokenize "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    if [ $rc = 2 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -qF -- "$needle" "$tmp/err"; then ok
    else bad "$name: exit $rc, stderr '$(cat "$tmp/err")'"; fi
}

# ids from SentencePiece (see tests/test_tokenizer_engine.c), BOS 1 first
expect "text" "1 346 306 414 410 263 304 341" -m "$model" "Hello  world"
expect "--json" '{"ids":[1,346,306,414,410,263,304,341]}' -m "$model" --json "Hello  world"
expect "--no-bos" "346 306 414 410 263 304 341" -m "$model" --no-bos "Hello  world"
expect "empty text: BOS alone" "1" -m "$model" ""
expect "empty text, --no-bos, --json" '{"ids":[]}' -m "$model" --no-bos --json ""
expect "-- before a text starting with -" "1 410 464 418 412 419 415" -m "$model" -- "-dash"
printf 'Hello  world\n' >"$tmp/hello.txt"
expect "-f drops one trailing newline (llama.cpp's -f)" "1 346 306 414 410 263 304 341" -m "$model" -f "$tmp/hello.txt"
printf 'a\nb\n\n' >"$tmp/two.txt"
got=$(kq tokenize -m "$model" --no-bos --lines -f "$tmp/two.txt" | tr '\n' '|')
if [ "$got" = "261|268||" ]; then ok; else bad "--lines (spm_encode gives 261|268||): got '$got'"; fi

expect_fail "missing model" "$tmp/none.gguf" -m "$tmp/none.gguf" "x"
expect_fail "not a GGUF" "$tmp/hello.txt" -m "$tmp/hello.txt" "x"
# a GGUF v3 with one key (general.architecture = llama) and no tokenizer, padded to 32 bytes
{
    printf 'GGUF\003\000\000\000'
    printf '\000\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000'
    printf '\024\000\000\000\000\000\000\000general.architecture'
    printf '\010\000\000\000\005\000\000\000\000\000\000\000llama'
    printf '\000\000\000\000\000\000\000'
} >"$tmp/notok.gguf"
expect_fail "GGUF without a tokenizer" "no tokenizer" -m "$tmp/notok.gguf" "x"
expect_fail "missing text file" "$tmp/none.txt" -m "$model" -f "$tmp/none.txt"
kq tokenize -m "$model" >"$tmp/out" 2>"$tmp/err"; rc=$?
if [ $rc = 2 ] && [ ! -s "$tmp/out" ] && grep -q '^usage: kq tokenize' "$tmp/err"; then ok; else bad "no text: exit $rc"; fi
expect_fail "unknown option" "--bogus" -m "$model" --bogus "x"

# a whole 1.3 MB file: one line, BOS first, and the time it takes (shown, not asserted)
wiki=$shared/text/wiki.test.raw
if [ -f "$wiki" ]; then
    t0=$(date +%s.%N)
    kq tokenize -m "$model" -f "$wiki" >"$tmp/wiki.ids"; rc=$?
    t1=$(date +%s.%N)
    n=$(wc -w <"$tmp/wiki.ids")
    echo "  wiki.test.raw: $n ids in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s (whole kq tokenize run)"
    if [ $rc = 0 ] && [ "$(wc -l <"$tmp/wiki.ids")" = 1 ] && [ "$(cut -d' ' -f1 "$tmp/wiki.ids")" = 1 ] && [ "$n" -gt 100000 ]; then ok
    else bad "kq tokenize -f $wiki: exit $rc, $n ids"; fi
else
    skipped "timing: $wiki not found"
fi

# SentencePiece itself on the first 200 lines of each text (spm_encode tokenizes line by line)
if ! command -v spm_encode >/dev/null 2>&1; then
    skipped "spm_encode not installed (apt-get install sentencepiece): no comparison with SentencePiece"
elif [ ! -x "$TEST_BIN" ] || ! $RUN "$TEST_BIN" --write-spm-model "$tmp/tok512.model" 2>"$tmp/err"; then
    skipped "cannot write the SentencePiece model of tok512 with $TEST_BIN: $(cat "$tmp/err" 2>/dev/null)"
else
    for f in tinystories_val.txt wiki.test.raw; do
        if [ ! -f "$shared/text/$f" ]; then skipped "$shared/text/$f not found"; continue; fi
        head -n 200 "$shared/text/$f" >"$tmp/lines.txt"
        spm_encode --model="$tmp/tok512.model" --output_format=id <"$tmp/lines.txt" >"$tmp/spm.ids"
        kq tokenize -m "$model" --no-bos --lines -f "$tmp/lines.txt" >"$tmp/kq.ids"
        if [ "$(wc -l <"$tmp/spm.ids")" = 200 ] && cmp -s "$tmp/spm.ids" "$tmp/kq.ids"; then ok
        else
            bad "$f: kq tokenize --lines differs from spm_encode on the first 200 lines"
            diff "$tmp/spm.ids" "$tmp/kq.ids" | head -n 6
        fi
    done
fi
finish
