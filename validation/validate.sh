#!/bin/sh
# kq validate: the main job. From a registry entry to reports/<model>/:
#   convert (F32 when the source is F32, F16, each QTYPE; the delta merge happens in kq convert),
#   bit-exactness of the NEON kernels (generic inputs and the model's own tensors, aarch64 binary under
#   qemu -cpu neoverse-n1 and -cpu cortex-a72, or natively on aarch64), per-tensor tolerance,
#   perplexity of each file on the evaluation text with F16 as the KL-divergence base, bench of each
#   file, Kunpeng 920 cycle estimates, and the report (kq report).
# usage: sh validation/validate.sh [MODEL]   (run by `make validate [MODEL=name] [QTYPES="..."]
#        [KQ_MODELS=dir] [CHUNKS=n]`). Environment knobs (all optional):
#   QTYPES   quantized types, in report order (default "q8_0 q5_0 q4_0 i4_g128_asym")
#   CHUNKS   perplexity windows (default 40), CTX their length (default 256)
#   THREADS  threads of perplexity and bench (default: online CPUs)
#   BENCH    kq bench options (default "-p 128 -n 32 -r 8", plus "--bw-mib 256" when the F16 file is under
#            64 MiB: such weights are cache-resident, the roofline is n/a, and the default bandwidth buffer
#            of 4x the last-level cache would only cost time)
#   FULL=1   the full generic bit-exactness check instead of --quick (about 2 min per CPU under qemu)
#   KQ_SHARED (default ../shared), KQ_MODELS (model folders, see convert/registry.h)
#   KQ_BIN   the host kq binary (default build/host/kq, on aarch64 build/aarch64/kq)
#   KQ_WORK (default build/validate), KQ_CACHE (default build/models), KQ_REPORTS (default reports):
#            where the step outputs, the converted files and the reports go (tests use temp folders)
#   GENERIC=0  skip the generic-input bit-exactness runs (the model-tensor ones stay)
#   CYCLES=0   reuse build/kunpeng-cycles.json instead of running llvm-mca again
# Exit: 0 all passed, 1 a check failed, 3 a step is not built yet (named), 4 the model's files are missing.
set -u
MODEL=${1:-}
QTYPES=${QTYPES:-q8_0 q5_0 q4_0 i4_g128_asym}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-40}
THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
BENCH=${BENCH:-}
FULL=${FULL:-0}
GENERIC=${GENERIC:-1}
CYCLES=${CYCLES:-1}
shared=${KQ_SHARED:-../shared}
HOST=build/host/kq
A64=build/aarch64/kq
arch=$(uname -m)
if [ "$arch" = aarch64 ]; then HOST=build/aarch64/kq; fi
HOST=${KQ_BIN:-$HOST}
status=0
missing=""
t_start=$(date +%s)

step() { echo "== [$(( $(date +%s) - t_start ))s] $*" >&2; }
result() { printf '%-62s %s\n' "$1" "$2"; }
fail() { result "$1" "FAIL${2:+ ($2)}"; status=1; }
not_built() { missing="$missing
  - $1"; result "$1" "NOT BUILT YET"; }
# 0 if `kq ARGS --help` is a command this binary has (unknown commands say "unknown command").
has_cmd() { ! "$HOST" "$@" --help 2>&1 | grep -q "unknown command"; }
has_opt() { opt=$1; shift; "$HOST" "$@" --help 2>&1 | grep -q -- "$opt"; }
# Runs a command line, records it in the reproduction list, and returns its status.
run() { printf '%s\n' "$*" >>"$work/commands.sh"; "$@"; }

if [ ! -x "$HOST" ]; then
    echo "kq validate: $HOST not found: run make first" >&2
    exit 3
fi
has_report=0; has_cmd report && has_report=1

# ---- 1. the model ---------------------------------------------------------------------------
if [ -z "$MODEL" ]; then
    if [ -f "$shared/models/stories260K/stories260K.bin" ] && [ -f "$shared/models/stories260K/tok512.bin" ]; then
        MODEL=stories260k
    else
        MODEL=fixture-llama-st
        echo "kq validate: $shared/models/stories260K/ not found: using the fixture $MODEL (random weights)" >&2
        if [ ! -f fixtures/generated/$MODEL/model.safetensors ]; then
            step "writing the fixtures (kq fixtures)"
            "$HOST" fixtures >/dev/null || { echo "kq validate: kq fixtures failed" >&2; exit 1; }
        fi
    fi
fi
case $MODEL in fixture-*)
    if [ ! -d fixtures/generated/$MODEL ] && [ -f fixtures/models/$MODEL.json ]; then
        step "writing the fixtures (kq fixtures)"; "$HOST" fixtures >/dev/null
    fi ;;
esac

work=${KQ_WORK:-build/validate}/$MODEL
models=${KQ_CACHE:-build/models}/$MODEL
report_dir=${KQ_REPORTS:-reports}/$MODEL
mkdir -p "$work" "$models"
rm -f "$work"/*.json "$work"/*.err "$work/commands.sh" "$work/tokens.txt" "$work"/*.kld
: >"$work/commands.sh"
step "model $MODEL: resolving through the registry"

src_dtype=f16
stamp=""
if [ $has_report = 1 ]; then
    if ! "$HOST" report --resolve "$MODEL" >"$work/resolve.txt" 2>"$work/resolve.err"; then
        cat "$work/resolve.err" >&2
        exit 4
    fi
    src_dtype=$(sed -n 's/^dtype //p' "$work/resolve.txt")
    # size + mtime of every source file: the cache key with kq's version
    stamp=$(sed -n 's/^file //p' "$work/resolve.txt" | while read -r f; do
        stat -L -c '%n %s %Y' "$f"; done)
else
    not_built "kq report (validation/report.c: cli/main.c does not dispatch 'report' yet): resolution, cache, report"
    case $MODEL in stories260k) src_dtype=f32 ;; esac
fi
columns=""
[ "$src_dtype" = f32 ] && columns="f32"
columns="$columns f16 $QTYPES"
columns=$(echo $columns)
echo "kq validate: $MODEL, source $src_dtype, files: $columns" >&2

# ---- 2. conversion (cached) -----------------------------------------------------------------------
step "conversion: $columns"
version=$("$HOST" --version 2>/dev/null | head -1)
for t in $columns; do
    out=$models/$MODEL-$t.gguf
    want=$(printf '%s\n%s\n%s\n' "$version" "type $t" "$stamp")
    if [ -n "$stamp" ] && [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$want" ]; then
        result "convert $t" "cached ($out)"
        printf '%s\n' "$HOST convert $MODEL -o $out -t $t   # cached" >>"$work/commands.sh"
        continue
    fi
    rm -f "$out.stamp"
    if run "$HOST" convert "$MODEL" -o "$out" -t "$t" 2>"$work/convert-$t.err"; then
        printf '%s\n' "$want" >"$out.stamp.tmp" && mv -f "$out.stamp.tmp" "$out.stamp"
        result "convert $t" "DONE ($out)"
    else
        fail "convert $t" "see $work/convert-$t.err"
        cat "$work/convert-$t.err" >&2
        echo "kq validate: conversion failed: nothing else can run" >&2
        exit 1
    fi
done
for t in $columns; do
    "$HOST" inspect "$models/$MODEL-$t.gguf" --json >"$work/inspect-$t.json" 2>"$work/inspect-$t.err" ||
        fail "inspect $t" "see $work/inspect-$t.err"
done
ref_file=$models/$MODEL-f16.gguf
[ "$src_dtype" = f32 ] && ref_file=$models/$MODEL-f32.gguf
qlist=$(echo $columns | tr ' ' ',')

# ---- 3. bit-exactness -------------------------------------------------------------------------------
quick=--quick; [ "$FULL" = 1 ] && quick=""
bitexact() { # label runner...
    label=$1; shift
    step "bit-exactness: $label (generic inputs${quick:+, quick})"
    if [ "$GENERIC" = 0 ]; then
        result "bitexact --impl neon, generic inputs ($label)" "SKIPPED (GENERIC=0)"
    elif "$@" check bitexact --impl neon $quick --json >"$work/bitexact-$label.json" 2>"$work/bitexact-$label.err"; then
        result "bitexact --impl neon, generic inputs ($label)" PASS
    else
        fail "bitexact --impl neon, generic inputs ($label)" "see $work/bitexact-$label.json"
    fi
    step "bit-exactness: $label on the tensors of $ref_file"
    if ! "$@" check bitexact --help 2>&1 | grep -q -- --gguf; then
        not_built "bitexact --gguf (model tensors, $label)"
        return
    fi
    printf '%s\n' "$* check bitexact --impl neon --gguf $ref_file --types $qlist --json" >>"$work/commands.sh"
    if "$@" check bitexact --impl neon --gguf "$ref_file" --types "$qlist" --json \
        >"$work/bitexact-model-$label.json" 2>"$work/bitexact-model-$label.err"; then
        result "bitexact --impl neon on the model's tensors ($label)" PASS
    else
        fail "bitexact --impl neon on the model's tensors ($label)" "see $work/bitexact-model-$label.json"
    fi
}
if [ "$arch" = aarch64 ]; then
    bitexact native "$HOST"
else
    "$HOST" check bitexact --impl reference --quick >/dev/null 2>&1 &&
        result "bitexact --impl reference (host self-check)" PASS || fail "bitexact --impl reference (host self-check)"
    if [ ! -x "$A64" ]; then
        not_built "aarch64 binary $A64 (make ARCH=aarch64)"
    elif ! command -v qemu-aarch64 >/dev/null 2>&1; then
        not_built "qemu-aarch64 (apt-get install qemu-user): NEON bit-exactness"
    else
        for cpu in neoverse-n1 cortex-a72; do bitexact "$cpu" qemu-aarch64 -cpu "$cpu" "$A64"; done
    fi
fi

step "golden vectors (ggml's bytes) through kq quantize-raw"
if [ -f "$shared/golden/input.f32" ]; then
    ng=0 nbad=0
    for t in q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q2_K q3_K q4_K q5_K q6_K q8_K f16 bf16; do
        ng=$((ng + 1))
        "$HOST" quantize-raw -t "$t" "$shared/golden/input.f32" "$work/$t.bin" 2>/dev/null &&
            cmp -s "$work/$t.bin" "$shared/golden/$t.bin" || nbad=$((nbad + 1))
        rm -f "$work/$t.bin"
    done
    if [ $nbad = 0 ]; then result "golden: $ng types byte-identical to ggml" PASS; else fail "golden: $nbad of $ng types differ"; fi
else
    result "golden vectors" "SKIPPED ($shared/golden/input.f32 not found)"
fi

# ---- 4. tolerance ------------------------------------------------------------------------------------
step "quantization error: synthetic rows (thresholds) and the model's own tensors"
if "$HOST" check tolerance --json >"$work/tolerance.json" 2>"$work/tolerance.err"; then
    result "tolerance (thresholds in validation/tolerances.json)" PASS
else
    fail "tolerance" "see $work/tolerance.json, $work/tolerance.err"
fi
if has_opt --gguf check tolerance; then
    if run "$HOST" check tolerance --gguf "$ref_file" --types "$qlist" --json >"$work/tolerance-model.json" \
        2>"$work/tolerance-model.err"; then
        result "per-tensor error on $ref_file" DONE
    else
        fail "per-tensor error" "see $work/tolerance-model.err"
    fi
else
    not_built "check tolerance --gguf (per-tensor error)"
fi

# ---- 5. perplexity, KLD vs F16 ----------------------------------------------------------------------
if ! has_cmd perplexity; then
    not_built "kq perplexity (engine, perplexity, KL divergence)"
else
    pctx=$CTX
    eval_kind=text
    if [ "$MODEL" = stories260k ] && [ -f "$shared/text/tinystories_val.txt" ]; then
        eval_src="-f $shared/text/tinystories_val.txt"
        eval_desc="$shared/text/tinystories_val.txt (TinyStories validation, real text for the model's tokenizer)"
    else
        # Random weights: a token stream the model itself produces at low temperature, so PPL and
        # KLD measure something (real text would be noise to a random model).
        eval_kind=sampled
        if has_cmd sample; then
            step "evaluation tokens: sampled from $ref_file (temperature 0.5)"
            if run "$HOST" sample -m "$ref_file" --windows "$CHUNKS" -c "$pctx" --temp 0.5 --seed 1 \
                -o "$work/tokens.txt" 2>"$work/sample.err"; then
                result "evaluation tokens sampled ($CHUNKS x $pctx)" DONE
            else
                fail "kq sample" "see $work/sample.err"
            fi
        else
            not_built "kq sample (cli/cmd_sample.c: cli/main.c does not dispatch 'sample' yet)"
        fi
        eval_src="--tokens $work/tokens.txt"
        eval_desc="$CHUNKS windows of $pctx tokens sampled from $(basename "$ref_file") at temperature 0.5, seed 1"
    fi
    printf '%s\n' "$eval_desc" >"$work/eval.txt"
    if [ "$eval_kind" = text ] || [ -s "$work/tokens.txt" ]; then
        base=$work/base-f16.kld
        step "perplexity f16 (KLD base, $CHUNKS x $pctx tokens)"
        # shellcheck disable=SC2086
        if run "$HOST" perplexity -m "$models/$MODEL-f16.gguf" $eval_src -c "$pctx" --chunks "$CHUNKS" -t "$THREADS" \
            --save-logits "$base" --json >"$work/ppl-f16.json" 2>"$work/ppl-f16.err"; then
            result "perplexity f16 (base)" DONE
        else
            fail "perplexity f16" "see $work/ppl-f16.err"
        fi
        for t in $columns; do
            [ "$t" = f16 ] && continue
            step "perplexity $t, KLD vs f16"
            # shellcheck disable=SC2086
            if run "$HOST" perplexity -m "$models/$MODEL-$t.gguf" $eval_src -c "$pctx" --chunks "$CHUNKS" \
                -t "$THREADS" --kld-base "$base" --json >"$work/ppl-$t.json" 2>"$work/ppl-$t.err"; then
                result "perplexity $t (KLD vs f16)" DONE
            else
                fail "perplexity $t" "see $work/ppl-$t.err"
            fi
        done
    fi
fi

if [ -z "$BENCH" ]; then
    BENCH="-p 128 -n 32 -r 8"
    f16size=$(stat -L -c %s "$models/$MODEL-f16.gguf" 2>/dev/null || echo 0)
    [ "$f16size" -lt 67108864 ] && BENCH="$BENCH --bw-mib 256"
fi
# ---- 6. bench ----------------------------------------------------------------------------------------
if ! has_cmd bench; then
    not_built "kq bench (ms/token, pp tokens/s, roofline)"
else
    for t in $columns; do
        step "bench $t ($BENCH, $THREADS threads)"
        # shellcheck disable=SC2086
        if run "$HOST" bench -m "$models/$MODEL-$t.gguf" -t "$THREADS" $BENCH --json >"$work/bench-$t.json" \
            2>"$work/bench-$t.err"; then
            result "bench $t" DONE
        else
            fail "bench $t" "see $work/bench-$t.err"
        fi
    done
fi

# ---- 7. Kunpeng 920 cycle estimates ------------------------------------------------------------------
step "Kunpeng 920 cycle estimates (llvm-mca -mcpu=tsv110)"
if [ "$CYCLES" = 0 ] && [ -f build/kunpeng-cycles.json ]; then
    result "kunpeng-cycles" "REUSED (CYCLES=0: build/kunpeng-cycles.json)"
elif sh validation/kunpeng_cycles.sh build/kunpeng-cycles >"$work/kunpeng-cycles.txt" 2>&1; then
    result "kunpeng-cycles (build/kunpeng-cycles.json)" DONE
else
    fail "kunpeng-cycles" "see $work/kunpeng-cycles.txt"
fi

# ---- 8. the report -----------------------------------------------------------------------------------
"$HOST" --version >"$work/version.txt" 2>&1
[ -x "$A64" ] && [ "$arch" != aarch64 ] && qemu-aarch64 -cpu neoverse-n1 "$A64" --version >"$work/version-aarch64.txt" 2>&1
{
    printf '{"model":"%s","columns":[' "$MODEL"
    sep=""; for t in $columns; do printf '%s"%s"' "$sep" "$t"; sep=","; done
    printf '],"qtypes":['
    sep=""; for t in $QTYPES; do printf '%s"%s"' "$sep" "$t"; sep=","; done
    printf '],"source_dtype":"%s","base":"f16","ctx":%s,"chunks":%s,"threads":%s,' "$src_dtype" "$CTX" "$CHUNKS" "$THREADS"
    printf '"bench_args":"%s","full_bitexact":%s,"eval_kind":"%s","models_dir":"%s","arch":"%s","seconds":%s}\n' \
        "$BENCH" "$([ "$FULL" = 1 ] && echo true || echo false)" "${eval_kind:-text}" "$models" "$arch" \
        "$(( $(date +%s) - t_start ))"
} >"$work/manifest.json"
printf 'make validate MODEL=%s QTYPES="%s" CHUNKS=%s CTX=%s THREADS=%s\n' "$MODEL" "$QTYPES" "$CHUNKS" "$CTX" \
    "$THREADS" >"$work/make-command.txt"
if [ $has_report = 1 ]; then
    step "report: $report_dir/"
    if "$HOST" report -w "$work" -o "$report_dir" --cycles build/kunpeng-cycles.json 2>"$work/report.err"; then
        result "report ($report_dir/report.md, report.json, charts)" DONE
        cat "$work/report.err" >&2
    else
        cat "$work/report.err" >&2
        fail "report" "see $work/report.err"
    fi
fi

echo
if [ -n "$missing" ]; then
    echo "not built yet (the pipeline stops short of a complete report):$missing"
    [ $status = 0 ] && status=3
fi
echo "work files: $work/   converted models: $models/   report: $report_dir/"
echo "kq validate: $(( $(date +%s) - t_start )) s" >&2
exit $status
