/* kq: a data-only pickle VM for torch.save state_dicts (see pickle.h).
 *
 * Values are plain C structs; strings point into the input (never copied until a tensor is taken
 * out). Every value is allocated once and freed with the VM, so memo sharing and cycles cost
 * nothing. Each opcode creates at most one value and appends at most one reference per input byte,
 * so memory is linear in the input; fixed limits bound the rest (memo index, stack depth).
 */
#include "pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_STACK (1u << 20)
#define PK_MAX_MEMO (1u << 20)
#define PK_MAX_VALUES (1u << 21) /* ~160 bytes each; a 70B state_dict needs ~15 per tensor */

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;

static const char *const vkind_names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict",
                                          "global", "storage", "tensor"};

/* The accepted globals: symbols only, never looked up in any runtime. */
enum { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_REBUILD_PARAM_STATE, G_STORAGE };
static const struct {
    const char *module, *name;
    int kind;
    kq_dtype dtype;
    size_t elsize;
} known_globals[] = {
    {"collections", "OrderedDict", G_ODICT, KQ_DT_OTHER, 0},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2, KQ_DT_OTHER, 0},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, KQ_DT_OTHER, 0},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM_STATE, KQ_DT_OTHER, 0},
    {"torch", "FloatStorage", G_STORAGE, KQ_DT_F32, 4},
    {"torch", "HalfStorage", G_STORAGE, KQ_DT_F16, 2},
    {"torch", "BFloat16Storage", G_STORAGE, KQ_DT_BF16, 2},
    {"torch", "DoubleStorage", G_STORAGE, KQ_DT_F64, 8},
    {"torch", "LongStorage", G_STORAGE, KQ_DT_I64, 8},
    {"torch", "IntStorage", G_STORAGE, KQ_DT_I32, 4},
    {"torch", "ShortStorage", G_STORAGE, KQ_DT_I16, 2},
    {"torch", "CharStorage", G_STORAGE, KQ_DT_I8, 1},
    {"torch", "ByteStorage", G_STORAGE, KQ_DT_U8, 1},
    {"torch", "BoolStorage", G_STORAGE, KQ_DT_BOOL, 1},
};
#define N_GLOBALS (sizeof known_globals / sizeof known_globals[0])

typedef struct pval pval;
struct pval {
    vkind kind;
    union {
        int64_t i;
        double f;
        struct { const uint8_t *p; size_t n; } s;
        struct { pval **v; size_t n, cap; } seq; /* tuple, list; dict: keys and values alternate */
        int g;                                   /* index into known_globals */
        struct { int g; const uint8_t *key; size_t keylen; int64_t numel; } st;
        struct { pval *storage; int64_t offset; int ndim; int64_t shape[KQ_SRC_MAX_DIMS], stride[KQ_SRC_MAX_DIMS]; } t;
    } u;
};

typedef struct {
    const uint8_t *p;
    size_t len, pos, op_pos;
    const char *file;
    char *err;
    size_t errlen;
    pval **all; size_t nall, capall;  /* every value, for freeing */
    pval **stack; size_t sp, capstack;
    size_t *marks; size_t nmarks, capmarks;
    pval **memo; size_t nmemo, memo_count; /* memo_count: distinct indices set (MEMOIZE) */
} vm;

static int fail(vm *m, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kq_ckpt_fail(m->err, m->errlen, "%s: pickle: %s", m->file, msg);
}

/* Grows *arr (of elsz-byte items) to hold need items; 0 or -1. */
static int grow(void **arr, size_t *cap, size_t need, size_t elsz) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*arr, nc * elsz);
    if (!q) return -1;
    *arr = q;
    *cap = nc;
    return 0;
}

static pval *new_val(vm *m, vkind k) {
    if (m->nall >= PK_MAX_VALUES) { fail(m, "more than %u values", PK_MAX_VALUES); return NULL; }
    if (grow((void **)&m->all, &m->capall, m->nall + 1, sizeof(pval *))) { fail(m, "out of memory"); return NULL; }
    pval *v = calloc(1, sizeof *v);
    if (!v) { fail(m, "out of memory"); return NULL; }
    v->kind = k;
    m->all[m->nall++] = v;
    return v;
}

static int push(vm *m, pval *v) {
    if (!v) return -1;
    if (m->sp >= PK_MAX_STACK) return fail(m, "stack deeper than %u at offset %zu", PK_MAX_STACK, m->op_pos);
    if (grow((void **)&m->stack, &m->capstack, m->sp + 1, sizeof(pval *))) return fail(m, "out of memory");
    m->stack[m->sp++] = v;
    return 0;
}

/* Bottom of the current mark frame: values above the last MARK may be popped, nothing below. */
static size_t frame_base(const vm *m) { return m->nmarks ? m->marks[m->nmarks - 1] : 0; }

static pval *pop(vm *m) {
    if (m->sp <= frame_base(m)) { fail(m, "stack underflow at offset %zu (opcode 0x%02x)", m->op_pos, m->p[m->op_pos]); return NULL; }
    return m->stack[--m->sp];
}

static pval *top(vm *m) {
    if (m->sp <= frame_base(m)) { fail(m, "stack underflow at offset %zu (opcode 0x%02x)", m->op_pos, m->p[m->op_pos]); return NULL; }
    return m->stack[m->sp - 1];
}

static int seq_add(vm *m, pval *c, pval *v) {
    if (grow((void **)&c->u.seq.v, &c->u.seq.cap, c->u.seq.n + 1, sizeof(pval *))) return fail(m, "out of memory");
    c->u.seq.v[c->u.seq.n++] = v;
    return 0;
}

/* Pops everything above the last MARK and the mark itself; the items stay at stack[*first..]. */
static int pop_mark(vm *m, size_t *first, size_t *count) {
    if (!m->nmarks) return fail(m, "opcode 0x%02x at offset %zu needs a MARK", m->p[m->op_pos], m->op_pos);
    size_t b = m->marks[--m->nmarks];
    *first = b;
    *count = m->sp - b;
    m->sp = b;
    return 0;
}

static int need(vm *m, size_t k) {
    if (m->len - m->pos < k)
        return fail(m, "truncated at offset %zu: opcode 0x%02x needs %zu more bytes", m->op_pos, m->p[m->op_pos], k);
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int op_int(vm *m, int nbytes, int is_signed32) {
    if (need(m, (size_t)nbytes)) return -1;
    uint64_t u = rd_le(m->p + m->pos, nbytes);
    m->pos += (size_t)nbytes;
    pval *v = new_val(m, V_INT);
    if (!v) return -1;
    v->u.i = is_signed32 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
    return push(m, v);
}

/* LONG1/LONG4: little-endian two's complement of n bytes; only what fits int64. */
static int op_long(vm *m, int lenbytes) {
    if (need(m, (size_t)lenbytes)) return -1;
    uint64_t n = rd_le(m->p + m->pos, lenbytes);
    m->pos += (size_t)lenbytes;
    if (n > 8) return fail(m, "integer of %llu bytes at offset %zu does not fit 64 bits", (unsigned long long)n, m->op_pos);
    if (need(m, (size_t)n)) return -1;
    uint64_t u = rd_le(m->p + m->pos, (int)n);
    if (n > 0 && n < 8 && (m->p[m->pos + n - 1] & 0x80)) u |= ~0ull << (8 * n); /* sign-extend */
    m->pos += (size_t)n;
    pval *v = new_val(m, V_INT);
    if (!v) return -1;
    v->u.i = (int64_t)u;
    return push(m, v);
}

static int op_str(vm *m, int lenbytes) {
    if (need(m, (size_t)lenbytes)) return -1;
    uint64_t n = rd_le(m->p + m->pos, lenbytes);
    m->pos += (size_t)lenbytes;
    if (n > m->len - m->pos) return fail(m, "string of %llu bytes at offset %zu runs past the end", (unsigned long long)n, m->op_pos);
    pval *v = new_val(m, V_STR);
    if (!v) return -1;
    v->u.s.p = m->p + m->pos;
    v->u.s.n = (size_t)n;
    m->pos += (size_t)n;
    return push(m, v);
}

static int str_is(const pval *v, const char *s) {
    return v->kind == V_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

static int push_global(vm *m, const uint8_t *mod, size_t nmod, const uint8_t *name, size_t nname) {
    for (size_t i = 0; i < N_GLOBALS; i++) {
        if (strlen(known_globals[i].module) == nmod && !memcmp(known_globals[i].module, mod, nmod) &&
            strlen(known_globals[i].name) == nname && !memcmp(known_globals[i].name, name, nname)) {
            pval *v = new_val(m, V_GLOBAL);
            if (!v) return -1;
            v->u.g = (int)i;
            return push(m, v);
        }
    }
    /* Print the name safely: it is attacker-controlled bytes. */
    char shown[120];
    size_t k = 0;
    for (size_t i = 0; i < nmod + 1 + nname && k + 1 < sizeof shown; i++) {
        uint8_t c = i < nmod ? mod[i] : i == nmod ? '.' : name[i - nmod - 1];
        shown[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    shown[k] = 0;
    return fail(m, "unknown global %s at offset %zu (refused, nothing executed)", shown, m->op_pos);
}

/* GLOBAL: "module\nname\n". */
static int op_global(vm *m) {
    const uint8_t *a = m->p + m->pos, *end = m->p + m->len;
    const uint8_t *nl1 = memchr(a, '\n', (size_t)(end - a));
    if (!nl1) return fail(m, "GLOBAL at offset %zu: unterminated module name", m->op_pos);
    const uint8_t *b = nl1 + 1;
    const uint8_t *nl2 = memchr(b, '\n', (size_t)(end - b));
    if (!nl2) return fail(m, "GLOBAL at offset %zu: unterminated name", m->op_pos);
    m->pos = (size_t)(nl2 + 1 - m->p);
    return push_global(m, a, (size_t)(nl1 - a), b, (size_t)(nl2 - b));
}

static int op_stack_global(vm *m) {
    pval *name = pop(m);
    if (!name) return -1;
    pval *mod = pop(m);
    if (!mod) return -1;
    if (mod->kind != V_STR || name->kind != V_STR) return fail(m, "STACK_GLOBAL at offset %zu needs two strings", m->op_pos);
    return push_global(m, mod->u.s.p, mod->u.s.n, name->u.s.p, name->u.s.n);
}

static int op_put(vm *m, uint64_t idx) {
    if (idx >= PK_MAX_MEMO) return fail(m, "memo index %llu at offset %zu too large", (unsigned long long)idx, m->op_pos);
    pval *v = top(m);
    if (!v) return -1;
    if (idx >= m->nmemo) {
        size_t nn = m->nmemo ? m->nmemo : 64;
        while (nn <= idx) nn *= 2;
        pval **q = realloc(m->memo, nn * sizeof *q);
        if (!q) return fail(m, "out of memory");
        memset(q + m->nmemo, 0, (nn - m->nmemo) * sizeof *q);
        m->memo = q;
        m->nmemo = nn;
    }
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = v;
    return 0;
}

static int op_get(vm *m, uint64_t idx) {
    if (idx >= m->nmemo || !m->memo[idx]) return fail(m, "memo index %llu at offset %zu was never set", (unsigned long long)idx, m->op_pos);
    return push(m, m->memo[idx]);
}

static int make_seq(vm *m, vkind k, size_t first, size_t count) {
    pval *v = new_val(m, k);
    if (!v) return -1;
    for (size_t i = 0; i < count; i++)
        if (seq_add(m, v, m->stack[first + i])) return -1;
    return push(m, v);
}

static int op_tuple_n(vm *m, size_t n) {
    if (m->sp - frame_base(m) < n) return fail(m, "stack underflow at offset %zu (TUPLE%zu)", m->op_pos, n);
    m->sp -= n;
    return make_seq(m, V_TUPLE, m->sp, n);
}

static int op_setitems(vm *m, int marked) {
    size_t first, count;
    if (marked) {
        if (pop_mark(m, &first, &count)) return -1;
    } else {
        if (m->sp - frame_base(m) < 2) return fail(m, "stack underflow at offset %zu (SETITEM)", m->op_pos);
        m->sp -= 2;
        first = m->sp;
        count = 2;
    }
    if (count % 2) return fail(m, "SETITEMS at offset %zu: odd number of items", m->op_pos);
    pval *d = top(m);
    if (!d) return -1;
    if (d->kind != V_DICT) return fail(m, "SETITEM at offset %zu on a %s, not a dict", m->op_pos, vkind_names[d->kind]);
    for (size_t i = 0; i < count; i++)
        if (seq_add(m, d, m->stack[first + i])) return -1;
    return 0;
}

static int op_appends(vm *m, int marked) {
    size_t first, count;
    if (marked) {
        if (pop_mark(m, &first, &count)) return -1;
    } else {
        if (m->sp - frame_base(m) < 1) return fail(m, "stack underflow at offset %zu (APPEND)", m->op_pos);
        first = --m->sp;
        count = 1;
    }
    pval *l = top(m);
    if (!l) return -1;
    if (l->kind != V_LIST) return fail(m, "APPEND at offset %zu on a %s, not a list", m->op_pos, vkind_names[l->kind]);
    for (size_t i = 0; i < count; i++)
        if (seq_add(m, l, m->stack[first + i])) return -1;
    return 0;
}

static int int_list(vm *m, const pval *s, int64_t *out, int *n, const char *what) {
    if (s->kind != V_TUPLE && s->kind != V_LIST) return fail(m, "_rebuild_tensor_v2 at offset %zu: %s is a %s", m->op_pos, what, vkind_names[s->kind]);
    if (s->u.seq.n > KQ_SRC_MAX_DIMS) return fail(m, "_rebuild_tensor_v2 at offset %zu: %zu dims (max %d)", m->op_pos, s->u.seq.n, KQ_SRC_MAX_DIMS);
    for (size_t i = 0; i < s->u.seq.n; i++) {
        if (s->u.seq.v[i]->kind != V_INT) return fail(m, "_rebuild_tensor_v2 at offset %zu: %s holds a %s", m->op_pos, what, vkind_names[s->u.seq.v[i]->kind]);
        out[i] = s->u.seq.v[i]->u.i;
    }
    *n = (int)s->u.seq.n;
    return 0;
}

static int rebuild_tensor(vm *m, const pval *args) {
    if (args->u.seq.n != 6 && args->u.seq.n != 7)
        return fail(m, "_rebuild_tensor_v2 at offset %zu with %zu arguments (want 6 or 7)", m->op_pos, args->u.seq.n);
    pval *const *a = args->u.seq.v;
    if (a[0]->kind != V_STORAGE) return fail(m, "_rebuild_tensor_v2 at offset %zu: first argument is a %s, not a storage", m->op_pos, vkind_names[a[0]->kind]);
    if (a[1]->kind != V_INT) return fail(m, "_rebuild_tensor_v2 at offset %zu: storage offset is a %s", m->op_pos, vkind_names[a[1]->kind]);
    pval *t = new_val(m, V_TENSOR);
    if (!t) return -1;
    int ns = 0, nst = 0;
    if (int_list(m, a[2], t->u.t.shape, &ns, "size") || int_list(m, a[3], t->u.t.stride, &nst, "stride")) return -1;
    if (ns != nst) return fail(m, "_rebuild_tensor_v2 at offset %zu: %d sizes but %d strides", m->op_pos, ns, nst);
    t->u.t.storage = a[0];
    t->u.t.offset = a[1]->u.i;
    t->u.t.ndim = ns;
    return push(m, t);
}

static int op_reduce(vm *m) {
    pval *args = pop(m);
    if (!args) return -1;
    pval *f = pop(m);
    if (!f) return -1;
    if (f->kind != V_GLOBAL) return fail(m, "REDUCE at offset %zu calls a %s", m->op_pos, vkind_names[f->kind]);
    if (args->kind != V_TUPLE) return fail(m, "REDUCE at offset %zu: arguments are a %s, not a tuple", m->op_pos, vkind_names[args->kind]);
    switch (known_globals[f->u.g].kind) {
    case G_ODICT:
        if (args->u.seq.n != 0) return fail(m, "OrderedDict at offset %zu with arguments (unsupported)", m->op_pos);
        return push(m, new_val(m, V_DICT));
    case G_REBUILD_V2:
        return rebuild_tensor(m, args);
    case G_REBUILD_PARAM:
    case G_REBUILD_PARAM_STATE: {
        size_t want = known_globals[f->u.g].kind == G_REBUILD_PARAM ? 3 : 4;
        if (args->u.seq.n != want || args->u.seq.v[0]->kind != V_TENSOR)
            return fail(m, "%s at offset %zu: want a tensor and %zu more arguments", known_globals[f->u.g].name, m->op_pos, want - 1);
        return push(m, args->u.seq.v[0]); /* a Parameter is its data */
    }
    default:
        return fail(m, "REDUCE at offset %zu calls %s.%s (not callable here)", m->op_pos, known_globals[f->u.g].module, known_globals[f->u.g].name);
    }
}

/* BINPERSID: torch.save's ('storage', StorageType, key, location, numel). */
static int op_persid(vm *m) {
    pval *pid = pop(m);
    if (!pid) return -1;
    if (pid->kind != V_TUPLE || pid->u.seq.n != 5)
        return fail(m, "persistent id at offset %zu is not a 5-tuple (legacy or unknown format)", m->op_pos);
    pval *const *a = pid->u.seq.v;
    if (!str_is(a[0], "storage")) return fail(m, "persistent id at offset %zu is not a 'storage' reference", m->op_pos);
    if (a[1]->kind != V_GLOBAL || known_globals[a[1]->u.g].kind != G_STORAGE)
        return fail(m, "persistent id at offset %zu: storage type is not a torch.*Storage", m->op_pos);
    if (a[2]->kind != V_STR || a[3]->kind != V_STR || a[4]->kind != V_INT)
        return fail(m, "persistent id at offset %zu: want (str key, str location, int numel)", m->op_pos);
    if (a[2]->u.s.n == 0 || a[2]->u.s.n > 256 || memchr(a[2]->u.s.p, 0, a[2]->u.s.n))
        return fail(m, "persistent id at offset %zu: bad storage key", m->op_pos);
    if (a[4]->u.i < 0) return fail(m, "persistent id at offset %zu: negative storage size", m->op_pos);
    pval *s = new_val(m, V_STORAGE);
    if (!s) return -1;
    s->u.st.g = a[1]->u.g;
    s->u.st.key = a[2]->u.s.p;
    s->u.st.keylen = a[2]->u.s.n;
    s->u.st.numel = a[4]->u.i;
    return push(m, s);
}

static int op_build(vm *m) {
    pval *state = pop(m);
    if (!state) return -1;
    pval *o = top(m);
    if (!o) return -1;
    /* A state_dict's state is its _metadata attribute; a tensor's, Python attributes: neither matters. */
    if (o->kind != V_DICT && o->kind != V_TENSOR) return fail(m, "BUILD at offset %zu on a %s", m->op_pos, vkind_names[o->kind]);
    return 0;
}

static int step(vm *m, int *stop) {
    m->op_pos = m->pos;
    const uint8_t op = m->p[m->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if (need(m, 1)) return -1;
        if (m->p[m->pos] < 2 || m->p[m->pos] > 5) return fail(m, "pickle protocol %u at offset %zu unsupported (2..5)", m->p[m->pos], m->op_pos);
        m->pos++;
        return 0;
    case 0x95: /* FRAME: a length hint only */
        if (need(m, 8)) return -1;
        m->pos += 8;
        return 0;
    case '.': *stop = 1; return 0;
    case '(':
        if (m->nmarks >= PK_MAX_STACK) return fail(m, "too many MARKs at offset %zu", m->op_pos);
        if (grow((void **)&m->marks, &m->capmarks, m->nmarks + 1, sizeof(size_t))) return fail(m, "out of memory");
        m->marks[m->nmarks++] = m->sp;
        return 0;
    case '0': return pop(m) ? 0 : -1;                 /* POP */
    case '1': { size_t f, c; return pop_mark(m, &f, &c); } /* POP_MARK */
    case '2': { pval *v = top(m); return v ? push(m, v) : -1; } /* DUP */
    case 'N': return push(m, new_val(m, V_NONE));
    case 0x88: case 0x89: {                           /* NEWTRUE, NEWFALSE */
        pval *v = new_val(m, V_BOOL);
        if (!v) return -1;
        v->u.i = op == 0x88;
        return push(m, v);
    }
    case 'J': return op_int(m, 4, 1);                 /* BININT */
    case 'K': return op_int(m, 1, 0);                 /* BININT1 */
    case 'M': return op_int(m, 2, 0);                 /* BININT2 */
    case 0x8a: return op_long(m, 1);                  /* LONG1 */
    case 0x8b: return op_long(m, 4);                  /* LONG4 */
    case 'G': {                                       /* BINFLOAT: big-endian double */
        if (need(m, 8)) return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | m->p[m->pos + (size_t)i];
        m->pos += 8;
        pval *v = new_val(m, V_FLOAT);
        if (!v) return -1;
        memcpy(&v->u.f, &u, 8);
        return push(m, v);
    }
    case 'X': return op_str(m, 4);                    /* BINUNICODE */
    case 0x8c: return op_str(m, 1);                   /* SHORT_BINUNICODE */
    case 0x8d: return op_str(m, 8);                   /* BINUNICODE8 */
    case 'T': return op_str(m, 4);                    /* BINSTRING (py2 str) */
    case 'U': return op_str(m, 1);                    /* SHORT_BINSTRING */
    case 'B': return op_str(m, 4);                    /* BINBYTES */
    case 'C': return op_str(m, 1);                    /* SHORT_BINBYTES */
    case ')': return push(m, new_val(m, V_TUPLE));    /* EMPTY_TUPLE */
    case ']': return push(m, new_val(m, V_LIST));     /* EMPTY_LIST */
    case '}': return push(m, new_val(m, V_DICT));     /* EMPTY_DICT */
    case 0x85: return op_tuple_n(m, 1);
    case 0x86: return op_tuple_n(m, 2);
    case 0x87: return op_tuple_n(m, 3);
    case 't': case 'l': case 'd': {                   /* TUPLE, LIST, DICT from MARK */
        size_t f, c;
        if (pop_mark(m, &f, &c)) return -1;
        if (op == 'd' && c % 2) return fail(m, "DICT at offset %zu: odd number of items", m->op_pos);
        return make_seq(m, op == 't' ? V_TUPLE : op == 'l' ? V_LIST : V_DICT, f, c);
    }
    case 's': return op_setitems(m, 0);
    case 'u': return op_setitems(m, 1);
    case 'a': return op_appends(m, 0);
    case 'e': return op_appends(m, 1);
    case 'c': return op_global(m);
    case 0x93: return op_stack_global(m);
    case 'R': return op_reduce(m);
    case 'b': return op_build(m);
    case 'Q': return op_persid(m);
    case 'q': if (need(m, 1)) return -1; m->pos += 1; return op_put(m, m->p[m->pos - 1]);
    case 'r': if (need(m, 4)) return -1; m->pos += 4; return op_put(m, rd_le(m->p + m->pos - 4, 4));
    case 0x94: return op_put(m, m->memo_count);
    case 'h': if (need(m, 1)) return -1; m->pos += 1; return op_get(m, m->p[m->pos - 1]);
    case 'j': if (need(m, 4)) return -1; m->pos += 4; return op_get(m, rd_le(m->p + m->pos - 4, 4));
    default:
        return fail(m, "unknown or unsupported opcode 0x%02x at offset %zu", op, m->op_pos);
    }
}

static void vm_free(vm *m) {
    for (size_t i = 0; i < m->nall; i++) {
        pval *v = m->all[i];
        if (v->kind == V_TUPLE || v->kind == V_LIST || v->kind == V_DICT) free(v->u.seq.v);
        free(v);
    }
    free(m->all);
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

void kq_pkl_result_free(kq_pkl_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->t[i].name);
        free(r->t[i].storage_key);
    }
    free(r->t);
    r->t = NULL;
    r->n = 0;
}

static char *dup_bytes(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

/* A name made printable for an error message. */
static void shown_name(const pval *k, char *buf, size_t len) {
    size_t j = 0;
    for (size_t i = 0; i < k->u.s.n && j + 1 < len; i++) {
        uint8_t c = k->u.s.p[i];
        buf[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[j] = 0;
}

/* Checks one tensor of the state_dict and fills *o (name and key still unset). */
static int take_tensor(vm *m, const char *name, const pval *t, kq_pkl_tensor *o) {
    const pval *st = t->u.t.storage;
    o->dtype = known_globals[st->u.st.g].dtype;
    o->dtype_name = known_globals[st->u.st.g].name;
    o->storage_numel = st->u.st.numel;
    o->storage_offset = t->u.t.offset;
    o->ndim = t->u.t.ndim;
    const size_t el = known_globals[st->u.st.g].elsize;
    int64_t numel = 1;
    for (int d = 0; d < o->ndim; d++) {
        o->shape[d] = t->u.t.shape[d];
        o->stride[d] = t->u.t.stride[d];
        if (o->shape[d] < 0) return fail(m, "tensor %s: negative size %lld", name, (long long)o->shape[d]);
        if (o->stride[d] < 0) return fail(m, "tensor %s: negative stride", name);
        if (o->shape[d] && numel > (int64_t)(INT64_MAX / (int64_t)el) / o->shape[d])
            return fail(m, "tensor %s: element count overflows", name);
        numel *= o->shape[d];
    }
    /* Contiguous as PyTorch defines it: size-1 dims may have any stride. */
    int64_t expect = 1;
    for (int d = o->ndim - 1; d >= 0 && numel > 0; d--) {
        if (o->shape[d] != 1 && o->stride[d] != expect)
            return fail(m, "tensor %s is not contiguous (stride %lld in dim %d, want %lld)", name,
                        (long long)o->stride[d], d, (long long)expect);
        expect *= o->shape[d];
    }
    if (o->storage_offset < 0) return fail(m, "tensor %s: negative storage offset", name);
    if (numel > 0 && (o->storage_offset > o->storage_numel || numel > o->storage_numel - o->storage_offset))
        return fail(m, "tensor %s: %lld elements at offset %lld exceed its storage of %lld", name,
                    (long long)numel, (long long)o->storage_offset, (long long)o->storage_numel);
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const kq_pkl_tensor *const *)a)->name, (*(const kq_pkl_tensor *const *)b)->name);
}

static int extract(vm *m, const pval *root, kq_pkl_result *out) {
    if (root->kind != V_DICT) return fail(m, "top-level object is a %s, not a state_dict", vkind_names[root->kind]);
    const size_t n = root->u.seq.n / 2;
    kq_pkl_tensor *t = calloc(n ? n : 1, sizeof *t);
    if (!t) return fail(m, "out of memory");
    out->t = t;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        const pval *k = root->u.seq.v[2 * i], *v = root->u.seq.v[2 * i + 1];
        if (k->kind != V_STR) return fail(m, "state_dict key %zu is a %s, not a str", i, vkind_names[k->kind]);
        char shown[128];
        shown_name(k, shown, sizeof shown);
        if (memchr(k->u.s.p, 0, k->u.s.n)) return fail(m, "state_dict key %s holds a NUL byte", shown);
        if (v->kind != V_TENSOR) return fail(m, "value of %s is a %s, not a tensor", shown, vkind_names[v->kind]);
        if (take_tensor(m, shown, v, &t[i])) return -1;
        t[i].name = dup_bytes(k->u.s.p, k->u.s.n);
        t[i].storage_key = dup_bytes(v->u.t.storage->u.st.key, v->u.t.storage->u.st.keylen);
        out->n = i + 1;
        if (!t[i].name || !t[i].storage_key) return fail(m, "out of memory");
    }
    /* Duplicate names: a dict cannot hold them, a crafted pickle can. */
    const kq_pkl_tensor **s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return fail(m, "out of memory");
    for (size_t i = 0; i < n; i++) s[i] = &t[i];
    qsort(s, n, sizeof *s, cmp_names);
    for (size_t i = 1; i < n; i++) {
        if (!strcmp(s[i - 1]->name, s[i]->name)) {
            char shown[128];
            snprintf(shown, sizeof shown, "%s", s[i]->name);
            free(s);
            return fail(m, "duplicate tensor name %s", shown);
        }
    }
    free(s);
    return 0;
}

int kq_pickle_parse_state_dict(const uint8_t *pkl, size_t len, const char *file, kq_pkl_result *out,
                               char *err, size_t errlen) {
    vm m;
    memset(&m, 0, sizeof m);
    m.p = pkl;
    m.len = len;
    m.file = file ? file : "(memory)";
    m.err = err;
    m.errlen = errlen;
    out->t = NULL;
    out->n = 0;
    int stop = 0, rc = 0;
    while (!stop) {
        if (m.pos >= m.len) { rc = fail(&m, "truncated: no STOP opcode in %zu bytes", len); break; }
        if ((rc = step(&m, &stop))) break;
    }
    if (!rc) {
        pval *root = pop(&m);
        rc = root ? extract(&m, root, out) : -1;
    }
    vm_free(&m);
    if (rc) kq_pkl_result_free(out);
    return rc ? -1 : 0;
}

/* ---- writer: the bytes CPython's pickler emits for torch.save(state_dict), protocol 2 ---------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
    uint32_t memo; /* next memo index */
} wbuf;

static void w_bytes(wbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (grow((void **)&b->p, &b->cap, b->n + n, 1)) { b->oom = 1; return; }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void w_u8(wbuf *b, uint8_t v) { w_bytes(b, &v, 1); }

static void w_le(wbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    w_bytes(b, t, (size_t)n);
}

/* Memoizes the object just written, as the pickler does for every str, non-empty tuple, dict,
 * global and reduced object; returns its index for later BINGETs. */
static uint32_t w_put(wbuf *b) {
    uint32_t i = b->memo++;
    if (i < 256) { w_u8(b, 'q'); w_u8(b, (uint8_t)i); }
    else { w_u8(b, 'r'); w_le(b, i, 4); }
    return i;
}

static void w_get(wbuf *b, uint32_t i) {
    if (i < 256) { w_u8(b, 'h'); w_u8(b, (uint8_t)i); }
    else { w_u8(b, 'j'); w_le(b, i, 4); }
}

static uint32_t w_str(wbuf *b, const char *s) {
    size_t n = strlen(s);
    w_u8(b, 'X');
    w_le(b, n, 4);
    w_bytes(b, s, n);
    return w_put(b);
}

/* A str constant shared by every tensor ('storage', 'cpu'): written once, then fetched. */
static void w_shared_str(wbuf *b, const char *s, uint32_t *slot) {
    if (*slot == UINT32_MAX) *slot = w_str(b, s);
    else w_get(b, *slot);
}

static void w_int(wbuf *b, int64_t v) {
    if (v >= 0 && v < 256) { w_u8(b, 'K'); w_u8(b, (uint8_t)v); }
    else if (v >= 0 && v < 65536) { w_u8(b, 'M'); w_le(b, (uint64_t)v, 2); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { w_u8(b, 'J'); w_le(b, (uint64_t)v, 4); }
    else {
        /* LONG1, CPython's encode_long for v >= 2^31: bit_length / 8 + 1 bytes. */
        int bits = 0;
        for (uint64_t u = (uint64_t)v; u; u >>= 1) bits++;
        int nb = bits / 8 + 1;
        if (nb > 8) nb = 8;
        w_u8(b, 0x8a);
        w_u8(b, (uint8_t)nb);
        w_le(b, (uint64_t)v, nb);
    }
}

static void w_global(wbuf *b, const char *mod, const char *name, uint32_t *slot) {
    if (*slot != UINT32_MAX) { w_get(b, *slot); return; }
    w_u8(b, 'c');
    w_bytes(b, mod, strlen(mod));
    w_u8(b, '\n');
    w_bytes(b, name, strlen(name));
    w_u8(b, '\n');
    *slot = w_put(b);
}

/* A tuple of ints: () is EMPTY_TUPLE (not memoized), 1..3 items TUPLE1..3, more MARK ... TUPLE. */
static void w_int_tuple(wbuf *b, const int64_t *v, int n) {
    if (n == 0) { w_u8(b, ')'); return; }
    if (n > 3) w_u8(b, '(');
    for (int i = 0; i < n; i++) w_int(b, v[i]);
    w_u8(b, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
    w_put(b);
}

const char *kq_pkl_storage_name(kq_dtype dt) {
    for (size_t i = 0; i < N_GLOBALS; i++)
        if (known_globals[i].kind == G_STORAGE && known_globals[i].dtype == dt) return known_globals[i].name;
    return NULL;
}

int kq_pickle_write_state_dict(const kq_pkl_tensor *t, size_t n, uint8_t **out, size_t *outlen) {
    wbuf b;
    memset(&b, 0, sizeof b);
    uint32_t g_od = UINT32_MAX, g_rb = UINT32_MAX, s_storage = UINT32_MAX, s_cpu = UINT32_MAX;
    uint32_t g_st[KQ_DT_OTHER + 1];
    for (int i = 0; i <= KQ_DT_OTHER; i++) g_st[i] = UINT32_MAX;

    w_u8(&b, 0x80); w_u8(&b, 2);                         /* PROTO 2 */
    w_global(&b, "collections", "OrderedDict", &g_od);   /* OrderedDict.__reduce__: (cls, (), state, None, items) */
    w_u8(&b, ')'); w_u8(&b, 'R'); w_put(&b);
    for (size_t i0 = 0; i0 < n; i0 += 1000) {           /* items in batches of 1000, as the pickler does */
        size_t i1 = n - i0 > 1000 ? i0 + 1000 : n;
        if (i1 - i0 > 1) w_u8(&b, '(');
        for (size_t i = i0; i < i1; i++) {
            const char *sn = kq_pkl_storage_name(t[i].dtype);
            if (!sn) { free(b.p); return -1; }
            w_str(&b, t[i].name);
            w_global(&b, "torch._utils", "_rebuild_tensor_v2", &g_rb);
            w_u8(&b, '(');                               /* args: (storage, offset, size, stride, requires_grad, hooks) */
            w_u8(&b, '(');                               /* persistent id: ('storage', Type, key, location, numel) */
            w_shared_str(&b, "storage", &s_storage);
            w_global(&b, "torch", sn, &g_st[t[i].dtype]);
            w_str(&b, t[i].storage_key);
            w_shared_str(&b, "cpu", &s_cpu);
            w_int(&b, t[i].storage_numel);
            w_u8(&b, 't'); w_put(&b);
            w_u8(&b, 'Q');                               /* BINPERSID */
            w_int(&b, t[i].storage_offset);
            w_int_tuple(&b, t[i].shape, t[i].ndim);
            w_int_tuple(&b, t[i].stride, t[i].ndim);
            w_u8(&b, 0x89);                              /* requires_grad=False */
            w_get(&b, g_od); w_u8(&b, ')'); w_u8(&b, 'R'); w_put(&b); /* backward_hooks = OrderedDict() */
            w_u8(&b, 't'); w_put(&b);
            w_u8(&b, 'R'); w_put(&b);
        }
        w_u8(&b, i1 - i0 > 1 ? 'u' : 's');
    }
    /* state: {'_metadata': OrderedDict({'': {'version': 1}})}, as nn.Module.state_dict() leaves it. */
    w_u8(&b, '}'); w_put(&b);
    w_str(&b, "_metadata");
    w_get(&b, g_od); w_u8(&b, ')'); w_u8(&b, 'R'); w_put(&b);
    w_str(&b, "");
    w_u8(&b, '}'); w_put(&b);
    w_str(&b, "version");
    w_int(&b, 1);
    w_u8(&b, 's');
    w_u8(&b, 's');
    w_u8(&b, 's');
    w_u8(&b, 'b');                                       /* BUILD */
    w_u8(&b, '.');                                       /* STOP */
    if (b.oom) { free(b.p); return -1; }
    *out = b.p;
    *outlen = b.n;
    return 0;
}
