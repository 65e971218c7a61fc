/* kq model registry lookup (schema and rules in registry.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"

#if KQ_HAVE_CJSON
#include <cjson/cJSON.h>
#endif

int kq_registry_is_name(const char *s) {
    const size_t n = strlen(s);
    if (n == 0 || n >= 128) return 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-') return 0;
    }
    if (s[0] == '.') return 0;
    if (n > 4 && (!strcmp(s + n - 4, ".bin") || !strcmp(s + n - 5, ".gguf") || !strcmp(s + n - 5, ".json")))
        return 0;
    return 1;
}

void kq_registry_free(kq_reg_entry *e) {
    free(e->source);
    free(e->description);
    for (size_t i = 0; i < e->n_files; i++) free(e->files[i]);
    free(e->files);
    memset(e, 0, sizeof(*e));
}

static int kq_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int kq_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

void kq_registry_default_dir(const char *name, char *dir, size_t dirlen) {
    const char *root = getenv("KQ_MODELS");
    if (root && *root) snprintf(dir, dirlen, "%s/%s", root, name);
    else snprintf(dir, dirlen, "./models/%s", name);
}

#if KQ_HAVE_CJSON
/* Registry folders in the order of registry.h; returns how many were filled. */
static int kq_registry_dirs(char dirs[3][KQ_REG_PATH]) {
    int n = 0;
    const char *env = getenv("KQ_REGISTRY");
    if (env && *env) snprintf(dirs[n++], KQ_REG_PATH, "%s", env);
    snprintf(dirs[n++], KQ_REG_PATH, "./fixtures/models");
    char exe[KQ_REG_PATH];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(dirs[n++], KQ_REG_PATH, "%.4000s/../../fixtures/models", exe);
        }
    }
    return n;
}

static int kq_reg_str(const cJSON *root, const char *key, int required, char *out, size_t outlen,
                      const char *path, char *err, size_t errlen) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) {
        if (!required) return 0;
        snprintf(err, errlen, "%s: key '%s' is missing", path, key);
        return -1;
    }
    if (!cJSON_IsString(j)) {
        snprintf(err, errlen, "%s: key '%s' is not a string", path, key);
        return -1;
    }
    if (strlen(j->valuestring) >= outlen) {
        snprintf(err, errlen, "%s: key '%s' is too long", path, key);
        return -1;
    }
    snprintf(out, outlen, "%s", j->valuestring);
    return 0;
}

static char *kq_reg_strdup_key(const cJSON *root, const char *key, int required, const char *path, char *err,
                               size_t errlen, int *bad) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *bad = 0;
    if (!j) {
        if (required) {
            snprintf(err, errlen, "%s: key '%s' is missing", path, key);
            *bad = 1;
        }
        return NULL;
    }
    if (!cJSON_IsString(j)) {
        snprintf(err, errlen, "%s: key '%s' is not a string", path, key);
        *bad = 1;
        return NULL;
    }
    char *s = strdup(j->valuestring);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        *bad = 1;
    }
    return s;
}

static int kq_reg_files(const cJSON *root, kq_reg_entry *e, const char *path, char *err, size_t errlen) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "files");
    if (!a) {
        snprintf(err, errlen, "%s: key 'files' is missing", path);
        return -1;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > KQ_REG_MAX_FILES) {
        snprintf(err, errlen, "%s: key 'files' is not an array of at most %d strings", path, KQ_REG_MAX_FILES);
        return -1;
    }
    const int n = cJSON_GetArraySize(a);
    e->files = calloc((size_t)n + 1, sizeof(char *));
    if (!e->files) return -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strstr(it->valuestring, "..")) {
            snprintf(err, errlen, "%s: key 'files' holds an entry that is not a plain file name", path);
            return -1;
        }
        e->files[e->n_files] = strdup(it->valuestring);
        if (!e->files[e->n_files++]) return -1;
    }
    return 0;
}

static int kq_reg_parse(const char *text, const char *path, kq_reg_entry *e, char *err, size_t errlen) {
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: not a JSON object (malformed JSON)", path);
        cJSON_Delete(root);
        return -1;
    }
    int bad = 0, rc = 0;
    rc |= kq_reg_str(root, "name", 1, e->name, sizeof(e->name), path, err, errlen);
    if (!rc) rc |= kq_reg_str(root, "family", 1, e->family, sizeof(e->family), path, err, errlen);
    if (!rc) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "params");
        if (!p || !cJSON_IsNumber(p) || p->valuedouble < 0) {
            snprintf(err, errlen, "%s: key 'params' is %s", path, p ? "not a non-negative number" : "missing");
            rc = -1;
        } else {
            e->params = p->valuedouble;
        }
    }
    if (!rc) e->source = kq_reg_strdup_key(root, "source", 1, path, err, errlen, &bad), rc = bad ? -1 : 0;
    if (!rc) e->description = kq_reg_strdup_key(root, "description", 0, path, err, errlen, &bad), rc = bad ? -1 : 0;
    if (!rc) rc = kq_reg_files(root, e, path, err, errlen);
    snprintf(e->format, sizeof(e->format), "hf");
    snprintf(e->kind, sizeof(e->kind), "model");
    if (!rc) rc = kq_reg_str(root, "format", 0, e->format, sizeof(e->format), path, err, errlen);
    if (!rc) rc = kq_reg_str(root, "kind", 0, e->kind, sizeof(e->kind), path, err, errlen);
    if (!rc) rc = kq_reg_str(root, "base", 0, e->base, sizeof(e->base), path, err, errlen);
    if (!rc) rc = kq_reg_str(root, "delta", 0, e->delta, sizeof(e->delta), path, err, errlen);
    if (!rc) rc = kq_reg_str(root, "shared_dir", 0, e->shared_dir, sizeof(e->shared_dir), path, err, errlen);
    cJSON_Delete(root);
    if (rc) return -1;
    if (strcmp(e->format, "hf") && strcmp(e->format, "llama2c")) {
        snprintf(err, errlen, "%s: key 'format' is '%s', expected \"hf\" or \"llama2c\"", path, e->format);
        return -1;
    }
    if (!strcmp(e->format, "llama2c") && e->n_files < 2) {
        snprintf(err, errlen, "%s: key 'files' must list the checkpoint and the tokenizer for format llama2c", path);
        return -1;
    }
    if (!e->base[0] != !e->delta[0]) {
        snprintf(err, errlen, "%s: a delta model needs both keys 'base' and 'delta'", path);
        return -1;
    }
    return 0;
}

int kq_registry_find(const char *name, kq_reg_entry *e, char *err, size_t errlen) {
    memset(e, 0, sizeof(*e));
    if (!kq_registry_is_name(name)) {
        snprintf(err, errlen, "'%s' is not a registry name", name);
        return -1;
    }
    char lower[128];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof(lower); i++) lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = 0;
    char dirs[3][KQ_REG_PATH];
    const int nd = kq_registry_dirs(dirs);
    for (int d = 0; d < nd; d++) {
        char path[KQ_REG_PATH];
        snprintf(path, sizeof(path), "%.3900s/%s.json", dirs[d], lower);
        if (!kq_is_file(path)) continue;
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char *text = malloc((1u << 20) + 1);
        const size_t n = text ? fread(text, 1, 1u << 20, f) : 0;
        fclose(f);
        if (!text) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        text[n] = 0;
        snprintf(e->json_path, sizeof(e->json_path), "%s", path);
        const int rc = kq_reg_parse(text, path, e, err, errlen);
        free(text);
        if (rc) {
            kq_registry_free(e);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "no registry entry '%s' (looked for %s.json in %s%s%s)", name, lower, dirs[0],
             nd > 1 ? " and " : "", nd > 1 ? dirs[1] : "");
    return -1;
}
#else
int kq_registry_find(const char *name, kq_reg_entry *e, char *err, size_t errlen) {
    memset(e, 0, sizeof(*e));
    snprintf(err, errlen, "'%s': the model registry needs cJSON, which this build lacks", name);
    return -1;
}
#endif

/* 1 if dir holds every file of e (0 files: the folder must exist); else the first missing name. */
static int kq_dir_complete(const kq_reg_entry *e, const char *dir, char *missing, size_t missinglen) {
    if (!kq_is_dir(dir)) {
        if (missing && missinglen) snprintf(missing, missinglen, "%s", e->n_files ? e->files[0] : "(folder)");
        return 0;
    }
    for (size_t i = 0; i < e->n_files; i++) {
        char p[KQ_REG_PATH + 256];
        snprintf(p, sizeof(p), "%.4000s/%.300s", dir, e->files[i]);
        if (!kq_is_file(p)) {
            if (missing && missinglen) snprintf(missing, missinglen, "%s", e->files[i]);
            return 0;
        }
    }
    return 1;
}

int kq_registry_resolve(const kq_reg_entry *e, char *dir, size_t dirlen, char *missing, size_t missinglen) {
    char cand[3][KQ_REG_PATH];
    int n = 0;
    const char *root = getenv("KQ_MODELS");
    if (root && *root) snprintf(cand[n++], KQ_REG_PATH, "%.3900s/%s", root, e->name);
    snprintf(cand[n++], KQ_REG_PATH, "./models/%s", e->name);
    if (e->shared_dir[0]) snprintf(cand[n++], KQ_REG_PATH, "%s", e->shared_dir);
    char first_missing[256] = "";
    for (int i = 0; i < n; i++) {
        char m[256];
        if (kq_dir_complete(e, cand[i], m, sizeof(m))) {
            snprintf(dir, dirlen, "%s", cand[i]);
            return 1;
        }
        if (i == 0) snprintf(first_missing, sizeof(first_missing), "%s", m);
    }
    snprintf(dir, dirlen, "%s", cand[0]);
    if (missing && missinglen) snprintf(missing, missinglen, "%s", first_missing);
    return 0;
}
