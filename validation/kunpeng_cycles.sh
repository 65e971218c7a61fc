#!/bin/sh
# kq: Kunpeng 920 (tsv110) cycle estimates of the hot loops we ship, by llvm-mca (`make kunpeng-cycles`).
# usage: sh validation/kunpeng_cycles.sh OUT_DIR          (run from the repository root)
#
# What it measures: every region marked in the code (optimized/neon/kq_mca.h):
#     # LLVM-MCA-BEGIN kernel:W[:B]
#     ...loop body...
#     # LLVM-MCA-END
#   kernel  the function measured, e.g. vec_dot_q4_0_q8_0 (or vec_dot_q4_0_q8_0_x2: two rows at once)
#   W       weights (elements) one pass through the region handles, summed over rows: a loop body of
#           8 q4_0 blocks is "vec_dot_q4_0_q8_0:256", of 8 blocks of 2 rows "vec_dot_q4_0_q8_0_x2:512"
#   B       optional: bytes of weights per 32 weights, for the GB/s column. Without it, B is the block
#           size of the first ggml type named in the kernel (q4_0 -> 18 bytes per 32; K-quants:
#           block bytes * 32 / 256); kernels naming no known type get no GB/s figure.
# in every optimized/neon/*.c (impl neon-dotprod for *_dotprod.c, else neon-plain) and, for marked
# reference loops (KQ_MCA_REF_BEGIN/END), in reference/*.c (impl reference).
#
# How: each file is compiled to assembly with the compiler and flags of the Makefile's aarch64 build
# (taken from `make -n`, so they cannot drift; -c becomes -S). The reference is compiled the same way
# plus -DKQ_MCA -O3 -fno-tree-vectorize -fno-tree-slp-vectorize (scalar code, as specified). `.arch` and
# `.arch_extension` lines are deleted (with them llvm-mca 14 rejects SDOT/fp16, prints an error,
# drops the instructions and still exits 0); clang-style `// LLVM-MCA-` markers become `#` ones.
# Each region goes to its own file with directives and comments removed, and to
#     llvm-mca -mtriple=aarch64 -mcpu=tsv110 -mattr=+dotprod,+fullfp16
# Any stderr output of llvm-mca is a failure, and so is a region whose instruction count (llvm-mca's
# Instructions / Iterations) differs from the count of instruction lines in the region.
#   cycles/32 = (Total Cycles / Iterations) / (W / 32)
#   GB/s      = B * 2.6e9 / cycles/32 / 1e9        (weights streamed by one core at 2.6 GHz)
# A region the compiler emitted more than once (inlined in two places) is reported once per copy,
# the later copies as kernel#2, kernel#3.
# Output: a table on stdout and OUT_DIR/kunpeng-cycles.json:
#   {"kernels":[{"name":..,"impl":..,"instructions":N,"cycles_per_32":X,"gbs_per_core":Y|null},..]}
# Exit status: 0 only if every region was measured and checked.
set -u

out=${1:-build/kunpeng-cycles}
GHZ=2.6
MCA_FLAGS="-mtriple=aarch64 -mcpu=tsv110 -mattr=+dotprod,+fullfp16"

die() { echo "kunpeng-cycles: $*" >&2; exit 1; }

[ -f Makefile ] && [ -d optimized/neon ] || die "run from the repository root"
MCA=$(command -v llvm-mca || command -v llvm-mca-14 || true)
[ -n "$MCA" ] || die "llvm-mca not found (Debian: apt-get install llvm)"
mkdir -p "$out/asm" "$out/regions" || die "cannot create $out"
rm -f "$out"/asm/* "$out"/regions/*

# compile_s SRC EXTRA_FLAGS: SRC -> $out/asm/NAME.s with the Makefile's aarch64 command
compile_s() {
    src=$1; extra=$2
    base=$(basename "$src" .c)
    obj="build/aarch64/obj/${src%.c}.o"
    cmd=$(MAKEFLAGS= MFLAGS= make -s -n -B ARCH=aarch64 SANITIZE=0 "$obj" 2>/dev/null | grep -e " -c $src " | tail -n 1)
    [ -n "$cmd" ] || { echo "kunpeng-cycles: no compile command for $src from make -n" >&2; return 1; }
    # -c SRC -o OBJ  ->  EXTRA -S SRC -o ASM (the .d file of -MMD follows -o into $out/asm)
    scmd=$(printf '%s\n' "$cmd" | sed "s| -c $src -o [^ ]*| $extra -S $src -o $out/asm/$base.s|")
    if ! sh -c "$scmd" >"$out/asm/$base.log" 2>&1; then
        cat "$out/asm/$base.log" >&2
        echo "kunpeng-cycles: compile failed: $scmd" >&2
        return 1
    fi
    # drop .arch lines; clang's comment style back to the one llvm-mca reads
    sed -e '/^[[:space:]]*\.arch/d' -e 's|^\([[:space:]]*\)//[[:space:]]*LLVM-MCA-|\1# LLVM-MCA-|' \
        "$out/asm/$base.s" >"$out/asm/$base.mca.s"
}

# split ASM IMPL: one file per region in $out/regions, named IMPL@NAME (a list in $out/regions.list)
split_regions() {
    asm=$1; impl=$2
    awk -v dir="$out/regions" -v impl="$impl" -v src="$asm" '
        function fail(msg) { print "kunpeng-cycles: " src ": " msg > "/dev/stderr"; bad = 1 }
        /^[[:space:]]*#[[:space:]]*LLVM-MCA-BEGIN/ {
            if (inreg) fail("region " name " has no END before the next BEGIN")
            name = $0; sub(/.*LLVM-MCA-BEGIN[[:space:]]*/, "", name); sub(/[[:space:]]+$/, "", name)
            if (name !~ /^[A-Za-z0-9_]+:[0-9]+(:[0-9.]+)?$/) fail("bad region name \"" name "\" (want kernel:W or kernel:W:B)")
            seen[name]++
            tag = name; if (seen[name] > 1) { k = index(name, ":"); tag = substr(name, 1, k - 1) "#" seen[name] substr(name, k) }
            file = dir "/" impl "@" tag ".s"; ninst = 0; nbr = 0; ncall = 0; nt = 0; inreg = 1
            delete inlabel; delete targets
            next
        }
        /^[[:space:]]*#[[:space:]]*LLVM-MCA-END/ {
            if (!inreg) fail("END without BEGIN")
            else {
                close(file)
                # a branch to a label inside the region is internal control flow (a loop or an
                # if/else): llvm-mca would sum the paths. A branch out of the region (to a rare slow
                # path) is just one more instruction of the straight-line body.
                for (k = 1; k <= nt; k++) if (targets[k] in inlabel) nbr++
                print impl "@" tag " " ninst " " nbr " " ncall >> (dir "/../regions.list")
            }
            inreg = 0; next
        }
        inreg {
            line = $0
            sub(/\/\/.*/, "", line)                       # gas comments
            if (line ~ /^[[:space:]]*#/) next            # #APP, #NO_APP, # 123 "file.c"
            if (line ~ /^[[:space:]]*$/) next
            if (line ~ /^[[:space:]]*\.[A-Za-z_][A-Za-z0-9_]*([[:space:]]|$)/ && line !~ /:[[:space:]]*$/) next # directives (.p2align too)
            print line > file
            if (line ~ /^[[:space:]]*[A-Za-z0-9_.$]+:[[:space:]]*$/) {
                lab = line; gsub(/[[:space:]:]/, "", lab); inlabel[lab] = 1
            } else {
                ninst++
                split(line, tok, /[[:space:]]+/); op = (tok[1] == "" ? tok[2] : tok[1])
                if (op ~ /^(bl|blr)$/) ncall++
                else if (op ~ /^(b|br|b\.?(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al|nv)|cbz|cbnz|tbz|tbnz)$/) {
                    tgt = tok[split(line, tok, /[[:space:],]+/)]; targets[++nt] = tgt
                }
            }
        }
        END {
            if (inreg) fail("region " name " has no END")
            exit bad
        }' "$asm"
}

# bytes of weights per 32 weights of the first ggml type in a kernel name ("" if none)
type_bytes() {
    echo "$1" | awk '{
        n = split("q4_0:18 q4_1:20 q5_0:22 q5_1:24 q8_0:34 q8_1:36 q2_K:10.5 q3_K:13.75 q4_K:18 q5_K:22 q6_K:26.25 q8_K:36.5 f32:128 f16:64 bf16:64", t, " ")
        best = 0; bytes = ""
        for (i = 1; i <= n; i++) {
            split(t[i], kv, ":")
            p = match($0, "(^|_)" kv[1] "(_|$)")
            if (p && (best == 0 || p < best)) { best = p; bytes = kv[2] }
        }
        print bytes
    }'
}

fail=0
: >"$out/regions.list"
for src in optimized/neon/*.c; do
    [ -f "$src" ] || continue
    case "$src" in *_dotprod.c) impl=neon-dotprod ;; *) impl=neon-plain ;; esac
    compile_s "$src" "" || { fail=1; continue; }
    split_regions "$out/asm/$(basename "$src" .c).mca.s" "$impl" || fail=1
done
for src in reference/*.c; do
    [ -f "$src" ] || continue
    compile_s "$src" "-DKQ_MCA -O3 -fno-tree-vectorize -fno-tree-slp-vectorize" || { fail=1; continue; }
    split_regions "$out/asm/$(basename "$src" .c).mca.s" reference || fail=1
done
[ -s "$out/regions.list" ] || die "no LLVM-MCA regions found in optimized/neon/*.c or reference/*.c"

# ---- measure each region ----
json="$out/kunpeng-cycles.json"
rows="$out/rows.txt"
: >"$rows"
printf '%-34s %-13s %6s %11s %9s\n' kernel impl instr cycles/32 GB/s
while read -r key ninst nbr ncall; do
    impl=${key%%@*}
    tag=${key#*@}
    kernel=${tag%%:*}
    rest=${tag#*:}
    w=${rest%%:*}
    b=""
    case "$rest" in *:*) b=${rest#*:} ;; esac
    [ -n "$b" ] || b=$(type_bytes "${kernel%%#*}")
    # llvm-mca models straight-line code: a call is not modelled at all, and a branch inside the
    # region means paths are summed (and an inner loop counted once). The shipped NEON loops must be branch-free; the
    # scalar reference (branchy by nature: fp16 conversion, clamps) is reported as an approximation.
    if [ "$ncall" != 0 ]; then
        echo "kunpeng-cycles: $key: the region calls a function; llvm-mca cannot model it" >&2; fail=1; continue
    fi
    approx=false
    if [ "$nbr" != 0 ]; then
        if [ "$impl" = reference ]; then approx=true
        else echo "kunpeng-cycles: $key: $nbr branches to labels inside the region (must be a straight-line loop body)" >&2; fail=1; continue; fi
    fi
    f="$out/regions/$key.s"
    rep="$out/regions/$key.mca.txt"
    # shellcheck disable=SC2086
    "$MCA" $MCA_FLAGS "$f" >"$rep" 2>"$rep.err"
    rc=$?
    if [ "$rc" != 0 ] || [ -s "$rep.err" ]; then
        echo "kunpeng-cycles: llvm-mca failed on $key (exit $rc):" >&2
        sed 's/^/  /' "$rep.err" >&2
        fail=1
        continue
    fi
    line=$(awk '/^Iterations:/ {it = $2} /^Instructions:/ {ins = $2} /^Total Cycles:/ {cy = $3}
                END { if (it > 0) printf "%d %.6f %d\n", ins / it, cy / it, (ins % it == 0) }' "$rep")
    set -- $line
    if [ $# -ne 3 ]; then
        echo "kunpeng-cycles: cannot read llvm-mca's report for $key" >&2; fail=1; continue
    fi
    mins=$1; cyc=$2
    if [ "$mins" != "$ninst" ] || [ "$3" != 1 ]; then
        echo "kunpeng-cycles: $key: llvm-mca saw $mins instructions per iteration, the assembly has $ninst" >&2
        fail=1
        continue
    fi
    awk -v k="$kernel" -v i="$impl" -v n="$ninst" -v c="$cyc" -v w="$w" -v b="$b" -v ghz="$GHZ" -v rows="$rows" \
        -v approx="$approx" -v nbr="$nbr" 'BEGIN {
        if (w <= 0) { print "kunpeng-cycles: " k ": W must be > 0" > "/dev/stderr"; exit 1 }
        c32 = c / (w / 32)
        gbs = (b != "" && c32 > 0) ? sprintf("%.2f", b * ghz / c32) : "null"
        printf "%-34s %-13s %6d %10.2f%s %9s\n", k, i, n, c32, (approx == "true" ? "~" : " "), (gbs == "null" ? "-" : gbs)
        printf "{\"name\":\"%s\",\"impl\":\"%s\",\"instructions\":%d,\"cycles_per_32\":%.3f,\"gbs_per_core\":%s,\"branches\":%d,\"approximate\":%s}\n", k, i, n, c32, gbs, nbr, approx >> rows
    }' || fail=1
done <"$out/regions.list"

{
    printf '{"kernels":['
    awk 'NR > 1 { printf "," } { printf "\n  %s", $0 }' "$rows"
    printf '\n]}\n'
} >"$json"
# the issue's path: build/kunpeng-cycles.json beside the folder
cp "$json" "$(dirname "$out")/kunpeng-cycles.json" 2>/dev/null || true
echo "wrote $json ($(wc -l <"$rows" | tr -d ' ') regions; llvm-mca: $MCA, tsv110 at $GHZ GHz)"
grep -q '"approximate":true' "$rows" &&
    echo "~ reference regions branch inside (fp16 conversion, clamps): llvm-mca sums the straight-line paths, so those figures are approximate"
[ "$fail" = 0 ] || { echo "kunpeng-cycles: FAILED (see messages above)" >&2; exit 1; }
exit 0
