/* The wrapped allocator shared by the fault-injection tests (test_fault_alloc.c,
 * test_fault_pipeline.c). Both binaries link with -Wl,--wrap=malloc,calloc,realloc,strdup,
 * strndup (tests/CMakeLists.txt) and with tests/fault_alloc.c, which defines the wrappers.
 * While fa_armed is set, every wrapped call counts in fa_calls and the fa_fail_at-th one
 * (1-based; 0: none) returns NULL. The failed call's return address is kept in fa_fail_site,
 * and with RS_FAULT_SITES set in the environment its backtrace in fa_bt[0 .. fa_nbt). */
#ifndef RS_TESTS_FAULT_ALLOC_H
#define RS_TESTS_FAULT_ALLOC_H

#define FA_MAX_BT 10

extern long fa_calls, fa_fail_at;
extern int fa_armed;
extern void *fa_fail_site;
extern void *fa_bt[FA_MAX_BT];
extern int fa_nbt;

#endif
