/* The wrapped allocator of the fault-injection tests: see fault_alloc.h. */
#include <execinfo.h>
#include <stdlib.h>
#include <string.h>

#include "fault_alloc.h"

long fa_calls, fa_fail_at;
int fa_armed;
void *fa_fail_site;
void *fa_bt[FA_MAX_BT];
int fa_nbt;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* atomic: the library allocates from several threads (image decoding, the image prefetch) */
static int should_fail(void) { return fa_armed && __atomic_add_fetch(&fa_calls, 1, __ATOMIC_SEQ_CST) == fa_fail_at; }
/* in the wrapper itself, so that the return address is the library's call site */
#define FAILS()                                                                                 \
    (should_fail() ? (fa_fail_site = __builtin_return_address(0),                              \
                      fa_nbt = getenv("RS_FAULT_SITES") ? backtrace(fa_bt, FA_MAX_BT) : 0, 1)   \
                   : 0)

void *__wrap_malloc(size_t n) { return FAILS() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return FAILS() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return FAILS() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return FAILS() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return FAILS() ? NULL : __real_strndup(s, n); }
