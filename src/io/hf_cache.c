/* Hugging Face cache look-up (see include/reprshift/hf_cache.h). The environment variables,
 * their precedence and the ~ / $VAR expansion follow huggingface_hub's constants.py
 * (HF_HOME = expandvars(expanduser(getenv("HF_HOME", join(getenv("XDG_CACHE_HOME", ~/.cache),
 * "huggingface")))), HF_HUB_CACHE likewise over HUGGINGFACE_HUB_CACHE and HF_HOME/hub); the
 * revision rule follows snapshot_download with local_files_only=True. A variable set to the
 * empty string counts as set, as os.getenv treats it. */
#include "reprshift/hf_cache.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reprshift/fileio.h"

#define REF_MAX_BYTES 4096

/* os.path.expanduser: "~" or "~/..." → $HOME (or the passwd entry), "~user/..." → that
 * user's home; anything else unchanged. New string. */
static char *expand_user(const char *p) {
    if (p[0] != '~') return strdup(p);
    const char *slash = strchr(p, '/');
    size_t ulen = slash ? (size_t)(slash - p - 1) : strlen(p + 1);
    const char *home = NULL;
    if (ulen == 0) {
        home = getenv("HOME");
        if (!home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
    } else {
        char user[256];
        if (ulen >= sizeof user) return strdup(p);
        memcpy(user, p + 1, ulen);
        user[ulen] = 0;
        struct passwd *pw = getpwnam(user);
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home) return strdup(p);
    const char *rest = p + 1 + ulen;
    size_t hl = strlen(home);
    while (hl && home[hl - 1] == '/') hl--; /* userhome.rstrip("/") */
    if (!hl && !*rest) return strdup("/");
    char *out = malloc(hl + strlen(rest) + 1);
    if (!out) return NULL;
    memcpy(out, home, hl);
    strcpy(out + hl, rest);
    return out;
}

/* os.path.expandvars (POSIX): $NAME and ${NAME} (NAME = [A-Za-z0-9_]+ for the bare form)
 * are replaced when set, left as written otherwise. Takes ownership of p. */
static char *expand_vars(char *p) {
    if (!p || !strchr(p, '$')) return p;
    size_t cap = strlen(p) + 1, n = 0;
    char *out = malloc(cap);
    if (!out) {
        free(p);
        return NULL;
    }
    for (const char *s = p; *s;) {
        const char *val = NULL, *end = s + 1;
        if (*s == '$') {
            char name[256];
            size_t k = 0;
            if (s[1] == '{') {
                const char *close = strchr(s + 2, '}');
                if (close && (size_t)(close - s - 2) < sizeof name) {
                    k = (size_t)(close - s - 2);
                    memcpy(name, s + 2, k);
                    end = close + 1;
                }
            } else {
                while ((isalnum((unsigned char)s[1 + k]) || s[1 + k] == '_') && k + 1 < sizeof name) k++;
                memcpy(name, s + 1, k);
                end = s + 1 + k;
            }
            name[k] = 0;
            if (k) val = getenv(name);
            if (!val) end = s + 1; /* unset: keep the '$' and go on */
        }
        const char *piece = val ? val : s;
        size_t plen = val ? strlen(val) : (size_t)(end - s);
        if (n + plen + 1 > cap) {
            cap = 2 * (n + plen + 1);
            char *o2 = realloc(out, cap);
            if (!o2) {
                free(out);
                free(p);
                return NULL;
            }
            out = o2;
        }
        memcpy(out + n, piece, plen);
        n += plen;
        s = end;
    }
    out[n] = 0;
    free(p);
    return out;
}

/* os.path.join(a, b) for a relative b: "a/b", no doubled '/', "b" when a is empty. */
static char *py_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *out = malloc(la + lb + 2);
    if (!out) return NULL;
    memcpy(out, a, la);
    size_t n = la;
    if (la && a[la - 1] != '/') out[n++] = '/';
    memcpy(out + n, b, lb + 1);
    return out;
}

char *rs_hf_hub_cache_dir(void) {
    const char *hub = getenv("HF_HUB_CACHE");
    if (!hub) hub = getenv("HUGGINGFACE_HUB_CACHE");
    if (hub) return expand_vars(expand_user(hub));
    char *home;
    const char *hf_home = getenv("HF_HOME");
    if (hf_home) {
        home = strdup(hf_home);
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME");
        char *h = xdg ? NULL : expand_user("~");
        char *base = xdg ? strdup(xdg) : h ? py_join(h, ".cache") : NULL;
        free(h);
        home = base ? py_join(base, "huggingface") : NULL;
        free(base);
    }
    if (!home) return NULL;
    char *e = expand_vars(expand_user(home));
    free(home);
    char *hubdir = e ? py_join(e, "hub") : NULL;
    free(e);
    /* HF_HUB_CACHE's default goes through expanduser/expandvars once more */
    char *tmp = hubdir ? expand_user(hubdir) : NULL;
    free(hubdir);
    return tmp ? expand_vars(tmp) : NULL;
}

int rs_hf_is_repo_id(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/')) return 0;
    if (strstr(s, "..") || strstr(s, "--")) return 0;
    if (strlen(s) > 200) return 0;
    for (const char *p = s; *p; p++)
        if (p != slash && !isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return 0;
    if (s[0] == '.' || slash[1] == '.' || slash[-1] == '.' || s[strlen(s) - 1] == '.') return 0;
    return 1;
}

static int is_commit_hash(const char *r) {
    if (strlen(r) != 40) return 0;
    for (const char *p = r; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f')) return 0;
    return 1;
}

/* A revision names a file under refs/ (branch, tag, "refs/pr/N"): no "..", no leading '/'. */
static int revision_ok(const char *r) {
    if (!*r || r[0] == '/' || strlen(r) > 255) return 0;
    for (const char *p = r; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '\\') return 0;
    for (const char *p = r; p; p = strchr(p, '/')) {
        if (*p == '/') p++;
        if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2])) return 0;
        if (!strncmp(p, ".", 1) && (p[1] == '/' || !p[1])) return 0;
    }
    return 1;
}

/* Which setting chose the cache folder (for messages). */
static const char *cache_source(void) {
    return getenv("HF_HUB_CACHE")            ? "from HF_HUB_CACHE"
           : getenv("HUGGINGFACE_HUB_CACHE") ? "from HUGGINGFACE_HUB_CACHE"
           : getenv("HF_HOME")               ? "from HF_HOME"
           : getenv("XDG_CACHE_HOME")        ? "from XDG_CACHE_HOME"
                                             : "the default; set HF_HUB_CACHE or HF_HOME to change it";
}

static void download_cmd(char *buf, size_t cap, const char *repo_id, const char *revision) {
    if (revision && strcmp(revision, "main"))
        snprintf(buf, cap, "huggingface-cli download %s --revision %s", repo_id, revision);
    else
        snprintf(buf, cap, "huggingface-cli download %s", repo_id);
}

/* A snapshot file whose blob is gone (interrupted download, hand-cleaned cache) is a
 * dangling symlink: it would look like a missing file to the loaders (inspect would even
 * treat a missing config.json as "no config"), so name it here. Top level only: model
 * checkpoints are flat, and an SAE file is checked by its own path. */
static int check_links(const char *snap, const char *repo_id, const char *cmd, rs_err *err) {
    DIR *d = opendir(snap);
    if (!d) return rs_errk(err, RS_EIO, "%s: cannot open the cached snapshot %s: %s", repo_id, snap, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = rs_path_join(snap, e->d_name);
        struct stat ls, st;
        if (!p) rc = rs_errk(err, RS_ENOMEM, "out of memory");
        else if (lstat(p, &ls) == 0 && S_ISLNK(ls.st_mode) && stat(p, &st) != 0)
            rc = rs_errf(err, "%s: the cached file %s is a broken link (its blob is missing: an interrupted download or "
                              "a cleaned cache): download it again with `%s`",
                         repo_id, p, cmd);
        free(p);
    }
    closedir(d);
    return rc;
}

int rs_hf_snapshot_dir(const char *repo_id, const char *revision, const char *cache_dir, char **out, rs_err *err) {
    *out = NULL;
    if (!revision) revision = "main";
    if (!rs_hf_is_repo_id(repo_id)) return rs_errf(err, "%s: not a Hugging Face repo id (expected ORG/NAME)", repo_id);
    if (!revision_ok(revision)) return rs_errf(err, "%s: invalid revision \"%s\"", repo_id, revision);
    char *cache = cache_dir ? strdup(cache_dir) : rs_hf_hub_cache_dir();
    char folder[512], cmd[600];
    snprintf(folder, sizeof folder, "models--%s", repo_id);
    *strchr(folder, '/') = 0;
    {
        /* models--ORG--NAME */
        const char *name = strchr(repo_id, '/') + 1;
        size_t k = strlen(folder);
        snprintf(folder + k, sizeof folder - k, "--%s", name);
    }
    download_cmd(cmd, sizeof cmd, repo_id, revision);
    char *repo = cache ? rs_path_join(cache, folder) : NULL, *commit = NULL, *ref = NULL, *snap = NULL;
    int rc = -1;
    if (!repo) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (!rs_is_dir(repo)) {
        rs_errf(err, "%s: not a folder, and not in the Hugging Face cache (looked for %s; cache %s, %s): download it "
                     "with `%s`",
                repo_id, repo, cache, cache_source(), cmd);
        goto done;
    }
    if (is_commit_hash(revision)) {
        commit = strdup(revision);
    } else {
        char rel[300];
        snprintf(rel, sizeof rel, "refs/%s", revision);
        ref = rs_path_join(repo, rel);
        if (!ref) {
            rs_errk(err, RS_ENOMEM, "out of memory");
            goto done;
        }
        if (!rs_path_exists(ref) || rs_is_dir(ref)) {
            rs_errf(err, "%s: revision \"%s\" is not in the Hugging Face cache (no %s): download it with `%s`",
                    repo_id, revision, ref, cmd);
            goto done;
        }
        size_t len;
        rs_err e2 = {0};
        if (rs_read_file(ref, REF_MAX_BYTES, &commit, &len, &e2)) {
            rs_errk(err, RS_EIO, "%s: cannot read the cached revision: %s", repo_id, e2.msg);
            goto done;
        }
        while (len && (commit[len - 1] == '\n' || commit[len - 1] == '\r' || commit[len - 1] == ' ')) commit[--len] = 0;
        if (!is_commit_hash(commit)) {
            rs_errf(err, "%s: does not hold a 40-hex commit hash (a damaged Hugging Face cache?)", ref);
            goto done;
        }
    }
    if (!commit) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    {
        char rel[64];
        snprintf(rel, sizeof rel, "snapshots/%s", commit);
        snap = rs_path_join(repo, rel);
    }
    if (!snap) {
        rs_errk(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    if (!rs_is_dir(snap)) {
        rs_errf(err, "%s: revision \"%s\" (commit %s) is not in the Hugging Face cache (no %s): download it with `%s`",
                repo_id, revision, commit, snap, cmd);
        goto done;
    }
    if (check_links(snap, repo_id, cmd, err)) goto done;
    *out = snap;
    snap = NULL;
    rc = 0;
done:
    free(cache);
    free(repo);
    free(commit);
    free(ref);
    free(snap);
    return rc;
}

int rs_hf_resolve_model(const char *name, const char *revision, char **dir, rs_err *err) {
    *dir = NULL;
    if (rs_is_dir(name)) {
        if (revision)
            return rs_errf(err, "%s: --revision applies to a Hub name (ORG/NAME), not to a folder", name);
        *dir = strdup(name);
        return *dir ? 0 : rs_errk(err, RS_ENOMEM, "out of memory");
    }
    if (!rs_hf_is_repo_id(name)) {
        if (rs_path_exists(name)) return rs_errf(err, "%s: not a folder (a model is a Hugging Face checkpoint folder)", name);
        return rs_errk(err, RS_EIO, "%s: model folder not found (give a folder, or a Hub name such as google/gemma-2-2b)", name);
    }
    return rs_hf_snapshot_dir(name, revision, NULL, dir, err);
}

int rs_hf_blob_sha256(const char *path, char hex[65]) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    int ok = 0;
    size_t L = strlen(real);
    char *slash = strrchr(real, '/');
    if (slash && L - (size_t)(slash + 1 - real) == 64) {
        const char *name = slash + 1;
        int hexname = 1;
        for (int i = 0; i < 64 && hexname; i++) hexname = isdigit((unsigned char)name[i]) || (name[i] >= 'a' && name[i] <= 'f');
        *slash = '\0';
        const char *dir = strrchr(real, '/');
        struct stat st;
        if (hexname && dir && !strcmp(dir + 1, "blobs") && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            memcpy(hex, name, 64);
            hex[64] = '\0';
            ok = 1;
        }
    }
    free(real);
    return ok;
}
