/* Hugging Face Hub names → local folders, looked up in the local Hugging Face cache the way
 * huggingface_hub itself does it (no network, ever):
 *   cache  = $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE (legacy), else $HF_HOME/hub, else
 *            ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub (each with ~ and $VAR expanded);
 *   repo   = <cache>/models--ORG--NAME;
 *   commit = the revision itself when it is a 40-hex commit hash, else refs/<revision>;
 *   folder = <repo>/snapshots/<commit> (files there are symlinks into blobs/).
 * Only the files a command needs must be there (a partial download of the files reprshift
 * reads is fine; the loaders name any missing file). docs/models.md ("Hub names"). */
#ifndef REPRSHIFT_HF_CACHE_H
#define REPRSHIFT_HF_CACHE_H

#include "reprshift/error.h"

/* The hub cache folder huggingface_hub would use, from the environment (new string; NULL on OOM). */
char *rs_hf_hub_cache_dir(void);

/* Is s shaped like a Hub repo id "ORG/NAME" (letters, digits, '-', '_', '.'; no "..")? */
int rs_hf_is_repo_id(const char *s);

/* Snapshot folder of a model repo at revision (NULL: "main") in cache_dir (NULL: the
 * default above): new string in *out. Not cached → error listing where it looked and the
 * `huggingface-cli download` command to run. */
int rs_hf_snapshot_dir(const char *repo_id, const char *revision, const char *cache_dir, char **out, rs_err *err);

/* A model given by the user: an existing folder is used as is (then revision must be NULL);
 * otherwise a repo id is resolved in the cache. New string in *dir. */
int rs_hf_resolve_model(const char *name, const char *revision, char **dir, rs_err *err);

/* The SHA-256 the cache already records for a file: huggingface_hub stores every LFS file
 * (weights) as <repo>/blobs/<sha256 of its content> and links snapshots/<commit>/<name> to
 * it. If path (after resolving links) is a regular file named by 64 lowercase hex digits in
 * a folder named "blobs", copies that name to hex[65] and returns 1; else returns 0 (small
 * non-LFS files are named by their 40-hex git blob id, which is not a SHA-256). */
int rs_hf_blob_sha256(const char *path, char hex[65]);

#endif
