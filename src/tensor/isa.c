/* The active ISA level of the dispatched kernels (see isa.h). */
#include "tensor/isa.h"

#include <string.h>

static const char *const NAMES[RS_ISA_COUNT] = {"default", "avx2", "avx512"};
static int g_active = -1; /* -1: not yet detected */
#if defined(__GNUC__)
#define LOAD(p) __atomic_load_n(p, __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELAXED)
#else
#define LOAD(p) (*(p))
#define STORE(p, v) (*(p) = (v))
#endif

const char *rs_isa_name(int isa) { return isa >= 0 && isa < RS_ISA_COUNT ? NAMES[isa] : "?"; }

int rs_isa_parse(const char *name) {
    for (int i = 0; name && i < RS_ISA_COUNT; i++)
        if (!strcmp(name, NAMES[i])) return i;
    return -1;
}

int rs_isa_supported(int isa) {
    if (isa == RS_ISA_DEFAULT) return 1;
#ifdef RS_ISA_X86
    __builtin_cpu_init();
    /* libgcc checks that the OS saves the wider registers (XCR0), not only the CPUID bits. */
    if (isa == RS_ISA_AVX2) return __builtin_cpu_supports("avx2") != 0;
    if (isa == RS_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2");
#endif
    return 0;
}

int rs_isa_best(void) {
    for (int i = RS_ISA_COUNT - 1; i > 0; i--)
        if (rs_isa_supported(i)) return i;
    return RS_ISA_DEFAULT;
}

int rs_isa_active(void) {
    int a = LOAD(&g_active);
    if (a < 0) {
        a = rs_isa_best();
        STORE(&g_active, a);
    }
    return a;
}

int rs_isa_force(int isa) {
    if (isa < 0 || isa >= RS_ISA_COUNT || !rs_isa_supported(isa)) return -1;
    STORE(&g_active, isa);
    return 0;
}
