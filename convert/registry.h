/* kq model registry: the names a user types (`kq convert chimera-7b`), one JSON file per name.
 *
 * ---- THE SCHEMA: fixtures/models/<name>.json (one object; unknown keys are ignored) ----
 *
 *   key           type              required  meaning
 *   name          string            yes       the registry name, lower case, equal to the file's base name
 *   family        string            yes       family table row of convert/family.h: "llama" (later others)
 *   params        number            yes       parameter count (e.g. 6738415616); 0 if unknown
 *   source        string            yes       where the files come from, as text for a human: URL(s),
 *                                             HF repo id and revision, release instructions
 *   files         array of strings  yes       file names expected in the model's folder (the check that
 *                                             the folder is complete; shards listed one by one)
 *   format        string            no        "hf" (default: config.json + safetensors/.bin folder) or
 *                                             "llama2c" (files[0] = checkpoint .bin, files[1] = tokenizer.bin)
 *   base          string            no        delta models only: registry NAME of the base model
 *                                             (e.g. "llama-7b")
 *   delta         string            no        delta models only: registry NAME of the delta weights
 *                                             (e.g. "chimera-chat-7b-delta"; that entry has "kind": "delta")
 *   kind          string            no        "model" (default) or "delta" (weights only usable as a delta)
 *   shared_dir    string            no        a folder tried after the default ones, relative to the
 *                                             repo root (stories260k: "../shared/models/stories260K")
 *   license       string            no        informational
 *   description   string            no        informational
 *
 * A delta model (base + delta present) has no files of its own: `files` may be []. Converting it
 * converts the base's folder with --delta = the delta entry's folder.
 *
 * Example (fixtures/models/chimera-7b.json):
 *   { "name": "chimera-7b", "family": "llama", "params": 6738415616,
 *     "source": "LLMZoo: https://github.com/FreedomIntelligence/LLMZoo (Chimera-chat-7b delta) + LLaMA-7B",
 *     "files": [], "base": "llama-7b", "delta": "chimera-chat-7b-delta" }
 *
 * ---- Where files are looked for (first folder holding every file of `files` wins) ----
 *   1. $KQ_MODELS/<name>/   when KQ_MODELS is set
 *   2. ./models/<name>/     (relative to the working directory)
 *   3. <shared_dir>/        when the entry has one
 * If none is complete, the "expected" folder reported is the first of 1-2 (that is where the user
 * should put the files).
 *
 * ---- Where the registry is looked for ----
 *   $KQ_REGISTRY (a folder of <name>.json), else ./fixtures/models/, else <dir of the kq binary>/../../
 *   fixtures/models/ (build/host/kq inside the repo).
 *
 * Names: [a-z0-9._-]+, looked up case-insensitively (lower-cased); anything else is not a name.
 * Needs cJSON (KQ_HAVE_CJSON); without it kq_registry_find reports that the registry is unavailable. */
#ifndef KQ_REGISTRY_H
#define KQ_REGISTRY_H

#include <stddef.h>

#define KQ_REG_MAX_FILES 256
#define KQ_REG_PATH 4096

typedef struct {
    char name[128];
    char family[32];
    double params;
    char *source;                  /* owned */
    char *description;             /* owned, may be NULL */
    char format[16];               /* "hf" or "llama2c" */
    char kind[16];                 /* "model" or "delta" */
    char base[128];                /* "" unless a delta model */
    char delta[128];               /* "" unless a delta model */
    char shared_dir[KQ_REG_PATH];  /* "" when absent */
    char **files;                  /* owned */
    size_t n_files;
    char json_path[KQ_REG_PATH];   /* the file it was read from */
} kq_reg_entry;

/* 1 if s looks like a registry name ([A-Za-z0-9._-]+ with no '/' and not ending in .bin/.gguf). */
int kq_registry_is_name(const char *s);

/* Reads the entry of name. Returns 0, or -1 with err: "no registry entry 'x' (looked in DIR)" when
 * the file does not exist, or a message naming the JSON file and the key that is wrong. */
int kq_registry_find(const char *name, kq_reg_entry *e, char *err, size_t errlen);
void kq_registry_free(kq_reg_entry *e);

/* The folder holding the entry's files, by the rules above. Returns 1 and the folder in dir when a
 * complete one exists; 0 and the expected folder in dir (and, in missing, the first missing file
 * name) when not. */
int kq_registry_resolve(const kq_reg_entry *e, char *dir, size_t dirlen, char *missing, size_t missinglen);

/* Folder a name resolves to by default ($KQ_MODELS/<name> or ./models/<name>). */
void kq_registry_default_dir(const char *name, char *dir, size_t dirlen);

#endif
