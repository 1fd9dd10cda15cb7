"""The reference's timed passes, shared by gemma2_summary.py and paligemma_summary.py.

bench_gemma2_ref.py / bench_paligemma_ref.py print one JSON line per mode and process, with
its fastest pass ("seconds", the rate) and every pass ("runs_tokens_per_s" /
"runs_images_per_s", RS_BENCH_REF_REPEAT). The scripts may run the reference in more than one
process (RS_BENCH_REF_PROCS): its speed moves more between processes than between the passes
of one. A mode's figure is then its fastest pass over all processes, the most favourable
reading of the reference."""


def add_ref(refs, r, unit):
    """Adds one reference line r to refs (mode -> merged record); unit "tokens" or "images".
    The merged record is the fastest process's line, with "procs_runs": one list of rates per
    process, in order."""
    key = "runs_%s_per_s" % unit
    runs = r.get(key) or [r["%s_per_s" % unit]]
    old = refs.get(r["mode"])
    if old is None:
        refs[r["mode"]] = dict(r, procs_runs=[runs])
        return
    best = r if r["seconds"] < old["seconds"] else old
    refs[r["mode"]] = dict(best, procs_runs=old["procs_runs"] + [runs])


def passes(rec, fmt):
    """'best of N: a / b; c / d' (processes separated by ';'), or '' for a single pass."""
    pr = rec.get("procs_runs", [])
    n = sum(len(p) for p in pr)
    if n < 2:
        return ""
    procs = "; ".join(" / ".join(fmt % v for v in p) for p in pr)
    where = " in %d processes" % len(pr) if len(pr) > 1 else ""
    return "best of %d%s: %s" % (n, where, procs)
