#!/bin/sh
# kq: runs every test binary and the CLI tests, then prints one closing line for the whole run.
# usage: sh tests/run_all.sh BUILD_DIR MODE [BUILD_DIR MODE ...]
#   MODE host | native: run directly; qemu: run the aarch64 binaries under qemu-aarch64 twice,
#   -cpu neoverse-n1 (ARMv8.2 + dotprod + fp16, like Kunpeng 920) and -cpu cortex-a72 (ARMv8.0, like
#   Kunpeng 916). Never qemu's default CPU: it has SVE and i8mm, which Kunpeng 920 lacks.
set -u
total_p=0 total_f=0 total_s=0
failed_list=""

# run_one LABEL CMD...: runs a test program, adds up its closing line
run_one() {
    rl=$1; shift
    out=$("$@" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    printf '%s\n' "$out" | grep -E '^(FAIL|SKIP)' | sed "s|^|  [$rl] |"
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20 | sed "s|^|  [$rl] |"
        echo "  [$rl] no closing line (exit $rc): counted as 1 failure"
        total_f=$((total_f + 1)); failed_list="$failed_list $rl"
        return
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p'); s=${s:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
    [ "$f" != 0 ] && failed_list="$failed_list $rl"
    printf '%-44s %s\n' "$rl" "$line"
}

run_build() {
    bdir=$1 blabel=$2; shift 2
    for t in "$bdir"/tests/test_*; do
        [ -x "$t" ] || continue
        run_one "$blabel $(basename "$t")" "$@" "$t"
    done
    run_one "$blabel cli_test.sh" env KQ_RUN="$*" sh tests/cli_test.sh "$bdir/kq"
    run_one "$blabel tokenize_test.sh" env KQ_RUN="$*" sh tests/tokenize_test.sh "$bdir/kq"
}

# A short fuzz of every parser (make test SANITIZE=1 sets KQ_FUZZ_SECONDS): libFuzzer with ASan and
# UBSan, started from the corpus kept in tests/fuzz/corpus (copied, so the repository's corpus does
# not grow). `make fuzz FUZZ_SECONDS=600` is the long run.
if [ -n "${KQ_FUZZ_SECONDS:-}" ]; then
    for f in build/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        n=$(basename "$f")
        c=$(mktemp -d)
        [ -d "tests/fuzz/corpus/$n" ] && cp -r "tests/fuzz/corpus/$n/." "$c/"
        if "$f" -max_total_time="$KQ_FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "$c" >"$c.log" 2>&1; then
            total_p=$((total_p + 1)); printf '%-44s %s\n' "fuzz $n" "no finding in ${KQ_FUZZ_SECONDS} s"
        else
            total_f=$((total_f + 1)); failed_list="$failed_list fuzz-$n"
            tail -n 30 "$c.log" | sed "s|^|  [fuzz $n] |"
        fi
        rm -rf "$c" "$c.log"
    done
fi

# the llvm-mca regions of the shipped kernels (compiler output, not a run: once per test run)
run_one "kunpeng-cycles regions" sh tests/mca_test.sh

while [ $# -ge 2 ]; do
    dir=$1 mode=$2; shift 2
    case $mode in
        host|native)
            run_build "$dir" "$mode"
            # the whole make validate pipeline, quick (one QTYPE, few chunks), on the native binary
            run_one "$mode validate_test.sh" sh tests/validate_test.sh "$dir/kq" ;;
        qemu)
            for cpu in neoverse-n1 cortex-a72; do
                run_build "$dir" "qemu-$cpu" qemu-aarch64 -cpu "$cpu"
            done ;;
        *) echo "run_all.sh: unknown mode $mode" >&2; exit 2 ;;
    esac
done

[ -n "$failed_list" ] && echo "failing:$failed_list"
echo "total: $total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" = 0 ]
