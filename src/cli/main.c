/* reprshift CLI entry point: dispatch to one subcommand. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "reprshift/ops_bf16.h"
#include "reprshift/blas.h"
#include "reprshift/log.h"
#include "reprshift/ops.h"
#include "reprshift/version.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

/* One row per subcommand; keep in the order a user meets them. */
static const command COMMANDS[] = {
    {"run", cmd_run, "run a whole experiment from a config: extract -> shift -> probes -> report"},
    {"merge", cmd_merge, "finish a run extracted by a job array (run --shard I/N): stores, then analyses"},
    {"inspect", cmd_inspect, "show a checkpoint's config and tensor table"},
    {"tokenize", cmd_tokenize, "text -> token ids (one JSON array per line)"},
    {"config", cmd_config, "validate an experiment config and print it resolved"},
    {"dataset", cmd_dataset, "COCO -> balanced manifest; dataset stats; manifest check"},
    {"preprocess", cmd_preprocess, "image -> SigLIP pixels_u8 / pixel_values (for checking)"},
    {"extract", cmd_extract, "run a model and save activations at named hooks"},
    {"generate", cmd_generate, "generate text with a KV cache (Gemma-2 prompt, PaliGemma image + prompt)"},
    {"shift", cmd_shift, "representation shift between two models' activations (SAE features, CKA, CIs)"},
    {"sae", cmd_sae, "SAE fit quality / spliced CE / train a TopK SAE on stored activations / list SAE names"},
    {"report", cmd_report, "write one self-contained HTML report from a results directory"},
    {"probe", cmd_probe, "train / evaluate / apply linear probes on extracted activations"},
    {"intervene", cmd_intervene, "steer / ablate / patch at a hook; next-token logits, probabilities and KL"},
    {"lens", cmd_lens, "logit lens: final norm + unembedding applied to each layer's residual stream"},
};

static void usage(FILE *f) {
    fprintf(f, "reprshift %s - how a language model's representations shift in its VLM\n\n"
               "usage: reprshift COMMAND [options]   (reprshift COMMAND --help for details)\n\n"
               "commands:\n", RS_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

/* Two settings must be in the environment before the program starts, because the libraries
 * read them once when they are loaded (before main() and before any constructor of the
 * executable: setenv from a .preinit_array function is undone by libc's own start-up):
 *
 * 1. OpenMP threads must not spin while they wait. libgomp's default is to busy-wait up to
 *    GOMP_SPINCOUNT (300000 iterations) after every parallel region; on a loaded machine the
 *    spinning thread takes the core the other thread needs, and `probe train` ran several
 *    times slower than with passive waits (docs/pipeline.md, "Threads"). So OMP_WAIT_POLICY=
 *    PASSIVE unless the user set it or GOMP_SPINCOUNT. OpenBLAS (OpenMP build) uses libgomp too.
 * 2. OpenBLAS picks its kernel from the CPU model; a model newer than the library (Debian's
 *    0.3.21 on recent Xeons) falls back to a generic SSE kernel ("Prescott") at a fraction of
 *    the speed (bench/run_gemm_survey.sh: 6x slower sgemm on the dev VM). When that happens and
 *    the user pinned nothing (OPENBLAS_CORETYPE unset, RS_BLAS_KERNEL not "auto"), the kernel
 *    the CPU's instructions support (rs_blas_preferred_kernel) is set in OPENBLAS_CORETYPE.
 *    The re-executed process checks that kernel's sgemm against a double reference before it
 *    does anything else (rs_blas_check, a few ms); a kernel that fails goes back to OpenBLAS's
 *    own choice (one more re-exec). `reprshift --version` says which kernel runs and why.
 * Both are done with one re-exec of the binary; if exec fails the run goes on unchanged. */
#define CHOSEN_ENV "RS_BLAS_CHOSEN" /* "KERNEL DETECTED" from the parent; "refused ..." after a failed check */

static double g_check_worst = -1;
static int g_check_cases;

static void reexec_env(char **argv) {
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT") && !setenv("OMP_WAIT_POLICY", "PASSIVE", 1)) changed = 1;
    const char *chosen = getenv(CHOSEN_ENV), *user = getenv("RS_BLAS_KERNEL"), *ct = getenv("OPENBLAS_CORETYPE");
    rs_blas_info bi;
    rs_blas_info_get(&bi);
    if (chosen && ct && !strncmp(chosen, ct, strlen(ct)) && chosen[strlen(ct)] == ' ') {
        /* we chose this kernel in the parent: check it before trusting it */
        g_check_worst = rs_blas_check(&g_check_cases);
        if (getenv("RS_TEST_BLAS_CHECK_FAIL")) g_check_worst = INFINITY; /* fault injection (tests/cli_blas.sh) */
        if (!(g_check_worst <= rs_blas_check_bound())) {
            char buf[256];
            snprintf(buf, sizeof buf, "refused %s (sgemm check: worst error %.3g x the rounding unit, bound %g)", ct,
                     g_check_worst, rs_blas_check_bound());
            const char *detected = strchr(chosen, ' ') + 1;
            if (!setenv(CHOSEN_ENV, buf, 1) && !setenv("OPENBLAS_CORETYPE", detected, 1)) changed = 1;
        }
    } else if (!chosen && !ct && !(user && !strcmp(user, "auto")) && !strcmp(bi.library, "OpenBLAS")) {
        const char *k = rs_blas_preferred_kernel(bi.kernel);
        char buf[160];
        snprintf(buf, sizeof buf, "%s %s", k ? k : "", bi.kernel);
        if (k && !setenv(CHOSEN_ENV, buf, 1) && !setenv("OPENBLAS_CORETYPE", k, 1)) changed = 1;
    }
    if (changed) execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on; children still inherit the settings */
}

/* The library's messages (reprshift/log.h) go to stderr: message lines as they come;
 * progress lines redrawn in place on a terminal, otherwise one line every 5 s at most;
 * progress silenced by RS_QUIET=1 (tests). */
typedef struct {
    int tty, quiet, open; /* open: a redrawn progress line is on the terminal */
    double last;
} stderr_sink;

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sink_stderr(void *ctx, rs_log_kind kind, const char *text) {
    stderr_sink *s = ctx;
    if (kind == RS_LOG_MESSAGE) {
        fprintf(stderr, "%s%s\n", s->open ? "\n" : "", text);
        s->open = 0;
    } else if (!s->quiet) {
        if (s->tty) {
            fprintf(stderr, "\r%s%s", text, kind == RS_LOG_PROGRESS_END ? "\n" : "   ");
            s->open = kind == RS_LOG_PROGRESS;
        } else {
            double now = mono_now();
            if (kind == RS_LOG_PROGRESS && now - s->last < 5.0) return;
            s->last = now;
            fprintf(stderr, "%s\n", text);
        }
    }
    fflush(stderr);
}

int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "reprshift %s: %s must be an integer in [%ld, %ld] (got \"%s\")\n", cmd, opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out) {
    long v;
    if (cli_parse_long(cmd, opt, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s, unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (*s < '0' || *s > '9' || *end || errno == ERANGE) {
        fprintf(stderr, "reprshift %s: %s must be an integer in [0, %llu] (got \"%s\")\n", cmd, opt, ULLONG_MAX, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, int lo_open, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || (lo_open ? !(v > lo) : !(v >= lo)) || v > hi) {
        fprintf(stderr, "reprshift %s: %s must be a number in %c%g, %g%c (got \"%s\")\n", cmd, opt, lo_open ? '(' : '[',
                lo, hi, isinf(hi) ? ')' : ']', s);
        return -1;
    }
    *out = v;
    return 0;
}

/* `reprshift --version`: the tool, and the BLAS its products run on. */
static void print_version(void) {
    rs_blas_info bi;
    rs_blas_info_get(&bi);
    printf("reprshift %s\n", RS_VERSION);
    printf("BLAS: %s%s%s\n", bi.library, bi.config[0] ? " - " : "", bi.config);
    if (!bi.kernel[0]) return;
    const char *chosen = getenv(CHOSEN_ENV), *ct = getenv("OPENBLAS_CORETYPE");
    printf("BLAS kernel: %s ", bi.kernel);
    if (chosen && !strncmp(chosen, "refused ", 8))
        printf("(OpenBLAS's own choice; reprshift %s)\n", chosen);
    else if (chosen && g_check_worst >= 0)
        printf("(chosen by reprshift: OpenBLAS detected %s on this CPU, a generic fallback; sgemm check passed: worst "
               "error %.3g x the rounding unit over %d products, bound %g; RS_BLAS_KERNEL=auto keeps OpenBLAS's choice)\n",
               strchr(chosen, ' ') + 1, g_check_worst, g_check_cases, rs_blas_check_bound());
    else if (ct)
        printf("(pinned by OPENBLAS_CORETYPE=%s in the environment)\n", ct);
    else
        printf("(OpenBLAS's own choice for this CPU)\n");
}

/* The CLI's routing variables (never read by the library): each names a choice among a few
 * words; unset or empty leaves the library's own choice. A word it does not know, or a
 * route the build or CPU refuses, is an error naming the variable, not a silent fallback. */
typedef struct {
    const char *var;
    int (*parse)(const char *); /* the word → a route, or -1 */
    int (*set)(int);            /* 0, or -1: refused, nothing changed */
    const char *unknown;        /* the error for a word parse does not know */
    const char *refused;        /* the error when set refuses */
    int (*confirm)(int);        /* NULL, or a check after set: 0, or -1 with its error printed */
} env_route;

static int apply_env_route(const env_route *r) {
    const char *e = getenv(r->var);
    if (!e || !*e) return 0;
    int v = r->parse(e);
    if (v < 0 || r->set(v)) {
        fprintf(stderr, "error: %s=%s: %s\n", r->var, e, v < 0 ? r->unknown : r->refused);
        return -1;
    }
    return r->confirm ? r->confirm(v) : 0;
}

/* RS_SGEMM=onednn set, but oneDNN failed its accuracy check (blas.h): an error, not the BLAS */
static int sgemm_confirm(int route) {
    if (route != RS_SGEMM_ONEDNN || rs_sgemm_use_onednn()) return 0;
    char d[400];
    rs_sgemm_describe(d, sizeof d);
    fprintf(stderr, "error: RS_SGEMM=onednn: %s\n", d);
    return -1;
}

/* RS_ISA: the ISA level of the elementwise kernels (ops.h rs_isa_*); RS_BF16_GEMM: the route of
 * --precision bf16's products (docs/precision.md); RS_SGEMM: the route of the fp32 linear layers
 * (include/reprshift/blas.h; oneDNN asked for and failing its check is an error too); RS_ATTN:
 * the products of the fp32 attention (ops.h op_attn_route_*). */
static int apply_route_envs(void) {
    char isa_unknown[160], isa_refused[160];
    snprintf(isa_unknown, sizeof isa_unknown, "unknown ISA level (use default, avx2 or avx512; best here: %s)",
             rs_isa_name(rs_isa_best()));
    snprintf(isa_refused, sizeof isa_refused, "not supported by this CPU or build (best here: %s)",
             rs_isa_name(rs_isa_best()));
    const env_route routes[] = {
        {"RS_ISA", rs_isa_parse, rs_isa_force, isa_unknown, isa_refused, NULL},
        {"RS_BF16_GEMM", op_bf16_route_parse, op_bf16_set_route, "unknown route (use auto, native or emulated)",
         "native needs a build with oneDNN and a CPU with AVX512-BF16 or AMX-BF16", NULL},
        {"RS_SGEMM", rs_sgemm_route_parse, rs_sgemm_set_route, "unknown route (use auto, blas or onednn)",
         "onednn needs a build with oneDNN", sgemm_confirm},
        {"RS_ATTN", op_attn_route_parse, op_attn_route_set, "unknown route (use auto, blas or fused)",
         "the fused kernel needs a CPU with AVX-512", NULL},
    };
    if (getenv("RS_TEST_SGEMM_CHECK_FAIL")) rs_sgemm_inject_check_failure(1); /* fault injection (tests/cli_blas.sh) */
    const char *rule = getenv("RS_TEST_SGEMM_AUTO_RULE"); /* tests/cli_blas.sh: the automatic rule's answer, 0 or 1 */
    if (rule) rs_sgemm_inject_auto_rule(!strcmp(rule, "1"));
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (apply_env_route(&routes[i])) return -1;
    return 0;
}

static void print_attn(void) {
    if (op_attn_route() == OP_ATTN_ROUTE_FUSED)
        printf("fp32 attention: the fused AVX-512 kernel (blocks of 32 queries; equal to the BLAS route to rounding; "
               "RS_ATTN=blas: two sgemm per head)\n");
    else
        printf("fp32 attention: two BLAS sgemm per (sequence, head), the softmax rows between them (%s)\n",
               !op_attn_fused_available() ? "the fused kernel needs AVX-512"
               : rs_isa_active() != RS_ISA_AVX512 ? "the fused kernel follows RS_ISA=avx512"
                                                   : "RS_ATTN=blas");
}

static void print_isa(void) {
    int a = rs_isa_active(), best = rs_isa_best();
    printf("Kernels: %s (", rs_isa_name(a));
    if (a == best)
        printf("the best level this CPU supports");
    else
        printf("forced by RS_ISA; this CPU supports %s", rs_isa_name(best));
    printf("; compiled levels:");
    for (int i = 0; i < RS_ISA_COUNT; i++) printf(" %s%s", rs_isa_name(i), rs_isa_supported(i) ? "" : "(n/a)");
    printf("; every level gives the same bits)\n");
}

int main(int argc, char **argv) {
    reexec_env(argv);
    static stderr_sink sink;
    const char *q = getenv("RS_QUIET");
    sink.tty = isatty(2);
    sink.quiet = q && *q && *q != '0';
    rs_log_set(sink_stderr, &sink);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (apply_route_envs()) return 2;
    if (!strcmp(argv[1], "--version")) {
        print_version();
        char sg[400];
        rs_sgemm_describe(sg, sizeof sg);
        printf("fp32 linear layers: %s\n", sg);
        print_attn();
        print_isa();
        char bf[200];
        op_bf16_describe(bf, sizeof bf);
        printf("bf16 compute (--precision bf16): %s\n", bf);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "reprshift: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
