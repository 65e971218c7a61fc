#!/bin/sh
# kq: installs what the build and the tests need, when something is missing (the `deps` target).
# Debian/Ubuntu: apt-get; openEuler/Fedora/RHEL (most Kunpeng servers run openEuler): dnf.
# KQ_NO_DEPS=1 skips the check.
set -u
[ "${KQ_NO_DEPS:-0}" = 1 ] && exit 0

arch=$(uname -m)
missing=""
need() { missing="$missing $1"; }

# --- what is needed, checked by file or command, each with its Debian package ---
command -v cc >/dev/null 2>&1 || need build-essential
command -v make >/dev/null 2>&1 || need make
[ -f /usr/include/cjson/cJSON.h ] || need libcjson-dev
[ -f /usr/include/gsl/gsl_rng.h ] || need libgsl-dev
command -v gnuplot >/dev/null 2>&1 || need gnuplot-nox
command -v clang >/dev/null 2>&1 || need clang
command -v llvm-mca >/dev/null 2>&1 || need llvm
# libFuzzer and the sanitizer runtimes, which Debian's clang only recommends; sentencepiece's own
# tools check the tokenizer.model files kq writes
if command -v apt-get >/dev/null 2>&1; then
    command -v spm_encode >/dev/null 2>&1 || need sentencepiece
    ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || need libclang-rt-14-dev
fi
if [ "$arch" != aarch64 ]; then
    # the aarch64 build is cross-compiled and run under qemu
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need gcc-aarch64-linux-gnu
    [ -f /usr/aarch64-linux-gnu/lib/libc.a ] || need libc6-dev-arm64-cross
    command -v qemu-aarch64 >/dev/null 2>&1 || need qemu-user
fi
[ -z "$missing" ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing:$missing" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages; as root run: apt-get install -y$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || { echo "deps: apt-get update failed" >&2; exit 1; }
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >&2 || {
        echo "deps: apt-get install$missing failed" >&2
        exit 1
    }
elif command -v dnf >/dev/null 2>&1; then
    # openEuler / Fedora names; a native aarch64 build needs no cross compiler or qemu
    pkgs=""
    for p in $missing; do
        case $p in
            build-essential) pkgs="$pkgs gcc make glibc-devel" ;;
            make) pkgs="$pkgs make" ;;
            libcjson-dev) pkgs="$pkgs cjson-devel" ;;
            libgsl-dev) pkgs="$pkgs gsl-devel" ;;
            gnuplot-nox) pkgs="$pkgs gnuplot" ;;
            clang) pkgs="$pkgs clang" ;;
            llvm) pkgs="$pkgs llvm" ;;
            libclang-rt-14-dev) pkgs="$pkgs compiler-rt" ;;
            *)
                echo "deps: $p (the aarch64 cross toolchain and qemu) has no dnf package here;" \
                     "build natively on the aarch64 server instead (make; make test)" >&2
                exit 1 ;;
        esac
    done
    echo "deps: installing:$pkgs" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "deps: missing packages; as root run: dnf install -y$pkgs" >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    dnf install -y $pkgs >&2 || { echo "deps: dnf install$pkgs failed" >&2; exit 1; }
else
    echo "deps: missing$missing and neither apt-get nor dnf is here: install the equivalents by hand" >&2
    exit 1
fi
