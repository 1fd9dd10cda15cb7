/* `reprshift tokenize`: text -> token ids (one JSON array per input line), or with --decode
 * ids -> text (one JSON string per input line), using the Gemma tokenizer of a checkpoint
 * folder (DIR/tokenizer.json) or of an explicit tokenizer.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "reprshift/fileio.h"
#include "reprshift/hf_cache.h"
#include "reprshift/tokenizer.h"

static const char *USAGE =
    "usage: reprshift tokenize (--model DIR | --tokenizer FILE) (--text S | --texts FILE)\n"
    "                          [--no-bos] [--decode [--skip-special]] [--paligemma]\n";

static void help(void) {
    printf("%s\n"
           "Tokenize text with the Gemma tokenizer (Hugging Face tokenizer.json, BPE with byte\n"
           "fallback; ids identical to the `tokenizers` library) and print one JSON array of ids\n"
           "per input on stdout.\n\n"
           "  --model DIR       checkpoint folder, or a Hub name (google/gemma-2-2b) in the local\n"
           "                    Hugging Face cache; uses its tokenizer.json\n"
           "  --revision REV    branch, tag or commit of a Hub-named --model (default main)\n"
           "  --tokenizer FILE  a tokenizer.json file\n"
           "  --text S          one input string (may contain newlines; it is one input)\n"
           "  --texts FILE      one input per line (the \\n is removed, a \\r is kept); - = stdin\n"
           "  --no-bos          do not add <bos> (the post-processor template)\n"
           "  --decode          inputs are JSON arrays of ids; print one JSON string per input\n"
           "  --skip-special    with --decode: drop special tokens (<bos>, <eos>, <image>, ...)\n"
           "  --paligemma       add PaliGemma's <loc0000>..<loc1023>, <seg000>..<seg127>, <image>\n"
           "                    (for a plain Gemma tokenizer.json; ids 256000..257152)\n\n"
           "Exit status: 0 ok, 1 error (message on stderr), 2 usage error.\n"
           "Example: reprshift tokenize --model ckpt/ --text 'A dog on a beach.'\n"
           "         -> [2, 235280, 5929, 611, 476, 8318, 235265]\n",
           USAGE);
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "reprshift tokenize: %s%s%s\n%s", msg, arg ? " " : "", arg ? arg : "", USAGE);
    return 2;
}

static void print_ids(const int32_t *ids, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    fputs("]\n", stdout);
}

/* JSON string with the escapes json.dumps(ensure_ascii=False) uses; UTF-8 passes through. */
static void print_json_string(const char *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\b': fputs("\\b", stdout); break;
        case '\f': fputs("\\f", stdout); break;
        default:
            if (c < 0x20 || c == 0x7f) printf("\\u%04x", c);
            else putchar(c);
        }
    }
    fputs("\"\n", stdout);
}

/* Parse "[1, 2, 3]" into ids; -1 with a message on bad input. */
static int parse_id_array(const char *s, size_t len, int32_t **ids, size_t *n, char *msg, size_t msg_len) {
    *ids = NULL;
    *n = 0;
    cJSON *j = cJSON_ParseWithLength(s, len);
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        snprintf(msg, msg_len, "expected a JSON array of token ids");
        return -1;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(j), i = 0;
    int32_t *v = malloc((cnt + 1) * sizeof *v);
    if (!v) {
        cJSON_Delete(j);
        snprintf(msg, msg_len, "out of memory");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 2147483647.0 ||
            it->valuedouble != (double)(int32_t)it->valuedouble) {
            snprintf(msg, msg_len, "element %zu is not a non-negative integer id", i);
            free(v);
            cJSON_Delete(j);
            return -1;
        }
        v[i++] = (int32_t)it->valuedouble;
    }
    cJSON_Delete(j);
    *ids = v;
    *n = cnt;
    return 0;
}

/* Tokenize or decode one input; prints its output line. Returns 0, or 1 after printing an error. */
static int process(const rs_tokenizer *tok, const char *s, size_t len, int add_bos, int decode, int skip_special,
                   const char *where) {
    rs_err err = {0};
    if (decode) {
        int32_t *ids;
        size_t n;
        char msg[256];
        if (parse_id_array(s, len, &ids, &n, msg, sizeof msg)) {
            fprintf(stderr, "reprshift tokenize: %s: %s\n", where, msg);
            return 1;
        }
        char *text = NULL;
        size_t tl = 0;
        int rc = tok_decode_ex(tok, ids, n, skip_special, &text, &tl, &err);
        free(ids);
        if (rc) {
            fprintf(stderr, "reprshift tokenize: %s: %s\n", where, err.msg);
            return 1;
        }
        print_json_string(text, tl);
        free(text);
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode(tok, s, len, add_bos, &ids, &n, &err)) {
        fprintf(stderr, "reprshift tokenize: %s: %s\n", where, err.msg);
        return 1;
    }
    print_ids(ids, n);
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_dir = NULL, *tok_file = NULL, *text = NULL, *texts = NULL, *revision = NULL;
    int add_bos = 1, decode = 0, skip_special = 0, paligemma = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--model")       ? &model_dir
                           : !strcmp(a, "--tokenizer") ? &tok_file
                           : !strcmp(a, "--text")      ? &text
                           : !strcmp(a, "--texts")     ? &texts
                           : !strcmp(a, "--revision")  ? &revision
                                                       : NULL;
        if (dst) {
            if (i + 1 >= argc) return usage_error("missing value after", a);
            if (*dst) return usage_error("repeated option", a);
            *dst = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            add_bos = 0;
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else if (!strcmp(a, "--skip-special")) {
            skip_special = 1;
        } else if (!strcmp(a, "--paligemma")) {
            paligemma = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        } else {
            return usage_error("unknown argument", a);
        }
    }
    if (!!model_dir + !!tok_file != 1) return usage_error("give exactly one of --model DIR or --tokenizer FILE", NULL);
    if (!!text + !!texts != 1) return usage_error("give exactly one of --text S or --texts FILE", NULL);
    if (skip_special && !decode) return usage_error("--skip-special only applies with --decode", NULL);

    if (revision && !model_dir) return usage_error("--revision applies to --model", NULL);
    rs_err err = {0};
    char *resolved = NULL; /* --model as a folder or a Hub name in the Hugging Face cache */
    if (model_dir && rs_hf_resolve_model(model_dir, revision, &resolved, &err)) {
        fprintf(stderr, "reprshift tokenize: %s\n", err.msg);
        return 1;
    }
    char *path = model_dir ? rs_path_join(resolved, "tokenizer.json") : strdup(tok_file);
    free(resolved);
    if (!path) {
        fprintf(stderr, "reprshift tokenize: out of memory\n");
        return 1;
    }
    rs_tokenizer *tok = NULL;
    if (tok_load(&tok, path, &err) || (paligemma && tok_add_paligemma_tokens(tok, &err))) {
        fprintf(stderr, "reprshift tokenize: %s\n", err.msg);
        tok_free(tok);
        free(path);
        return 1;
    }
    free(path);

    int status = 0;
    if (text) {
        status = process(tok, text, strlen(text), add_bos, decode, skip_special, "--text");
    } else {
        FILE *fp = strcmp(texts, "-") ? fopen(texts, "rb") : stdin;
        if (!fp) {
            fprintf(stderr, "reprshift tokenize: %s: cannot open: %s\n", texts, strerror(errno));
            tok_free(tok);
            return 1;
        }
        char *line = NULL, where[1200];
        size_t cap = 0, lineno = 0;
        ssize_t got;
        while ((got = getline(&line, &cap, fp)) >= 0) {
            lineno++;
            size_t len = (size_t)got;
            if (len && line[len - 1] == '\n') len--;
            snprintf(where, sizeof where, "%s:%zu", texts, lineno);
            if ((status = process(tok, line, len, add_bos, decode, skip_special, where)) != 0) break;
        }
        if (!status && ferror(fp)) {
            fprintf(stderr, "reprshift tokenize: %s: read error\n", texts);
            status = 1;
        }
        free(line);
        if (fp != stdin) fclose(fp);
    }
    if (!status && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "reprshift tokenize: error writing to stdout\n");
        status = 1;
    }
    tok_free(tok);
    return status;
}
