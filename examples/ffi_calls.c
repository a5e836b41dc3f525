/*
 * ffi_calls.c - "call any C function" tasks: load cos from libm and crc32 from zlib with
 * dlopen/dlsym (a function of our own stands in when zlib is missing), describe them with the
 * signature language, and run 100,000 calls as tasks on the workers, then 10,000 on the
 * blocking pool. Checks every result against a direct call and prints calls per second.
 *
 * Usage: ffi_calls [calls]
 */
#include <moduvex.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "ffi_calls: %s: %s (%s)\n", what, mvx_strerror(r), mvx_last_error());
        exit(1);
    }
}

/* Stands in for zlib's crc32 when libz.so.1 is not installed: FNV-1a, same signature. */
static unsigned long fnv1a(unsigned long seed, const unsigned char *buf, unsigned len)
{
    uint64_t h = seed ^ 1469598103934665603ULL;
    for (unsigned i = 0; i < len; i++)
        h = (h ^ buf[i]) * 1099511628211ULL;
    return (unsigned long)h;
}

typedef double (*cos_fn)(double);
typedef unsigned long (*crc_fn)(unsigned long, const unsigned char *, unsigned);

static void *load(const char *lib, const char *sym, void **handle)
{
    *handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    return *handle ? dlsym(*handle, sym) : NULL;
}

/* Spawns n calls alternating cos and crc32, joins them, checks them; returns seconds. */
static double run(mvx_runtime *rt, long n, unsigned flags, cos_fn cos_p, crc_fn crc,
                  mvx_signature *cos_sig, mvx_signature *crc_sig, const unsigned char *data)
{
    mvx_join_handle **jh = malloc((size_t)n * sizeof *jh);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (i % 2 == 0) {
            double x = (double)i / 1000;
            void *args[] = {&x};
            check(mvx_spawn_call(rt, (void (*)(void))cos_p, cos_sig, args, flags, &jh[i]),
                  "spawn cos");
        } else {
            unsigned long seed = (unsigned long)i;
            const unsigned char *buf = data + i % 64;
            unsigned len = 64;
            void *args[] = {&seed, &buf, &len};
            check(mvx_spawn_call(rt, (void (*)(void))crc, crc_sig, args, flags, &jh[i]),
                  "spawn crc32");
        }
    }
    for (long i = 0; i < n; i++) {
        check(mvx_join_wait(jh[i], MVX_TIMEOUT_INFINITE), "join");
        if (i % 2 == 0) {
            double out;
            check(mvx_join_take(jh[i], &out, sizeof out, NULL), "take");
            if (out != cos_p((double)i / 1000)) {
                fprintf(stderr, "ffi_calls: cos(%ld/1000) differs\n", i);
                exit(1);
            }
        } else {
            uint64_t out;
            check(mvx_join_take(jh[i], &out, sizeof out, NULL), "take");
            if (out != crc((unsigned long)i, data + i % 64, 64)) {
                fprintf(stderr, "ffi_calls: crc of call %ld differs\n", i);
                exit(1);
            }
        }
        mvx_join_release(jh[i]);
    }
    double s = now_s() - t0;
    free(jh);
    return s;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    void *libm, *libz;
    cos_fn cos_p = (cos_fn)load("libm.so.6", "cos", &libm);
    crc_fn crc = (crc_fn)load("libz.so.1", "crc32", &libz);
    const char *crc_name = "crc32 from libz.so.1";
    if (!cos_p) {
        fprintf(stderr, "ffi_calls: cannot load cos from libm.so.6: %s\n", dlerror());
        return 1;
    }
    if (!crc) {
        crc = fnv1a;
        crc_name = "fnv1a (libz.so.1 not found)";
    }
    /* cos: double(double). crc32: uLong(uLong crc, const Bytef *buf, uInt len). */
    mvx_signature *cos_sig, *crc_sig;
    check(mvx_signature_parse("f64(f64)", 8, &cos_sig), "signature");
    const char *crc_text = sizeof(unsigned long) == 8 ? "u64(u64,ptr,u32)" : "u32(u32,ptr,u32)";
    check(mvx_signature_parse(crc_text, strlen(crc_text), &crc_sig), "signature");

    mvx_runtime *rt;
    check(mvx_runtime_new(NULL, &rt), "mvx_runtime_new");
    unsigned char data[128];
    for (int i = 0; i < 128; i++)
        data[i] = (unsigned char)(i * 37);
    double s = run(rt, n, 0, cos_p, crc, cos_sig, crc_sig, data);
    printf("%ld calls (cos from libm.so.6, %s) as tasks on %u workers: %.1f ms, %.0f calls/s\n",
           n, crc_name, mvx_runtime_worker_count(rt), s * 1e3, (double)n / s);
    long nb = n / 10;
    s = run(rt, nb, MVX_CALL_BLOCKING, cos_p, crc, cos_sig, crc_sig, data);
    printf("%ld calls on the blocking pool: %.1f ms, %.0f calls/s\n", nb, s * 1e3,
           (double)nb / s);
    printf("cos(1) = %.17g through the runtime and directly\n", cos_p(1.0));

    check(mvx_runtime_release(rt), "mvx_runtime_release");
    mvx_signature_release(cos_sig);
    mvx_signature_release(crc_sig);
    if (libz)
        dlclose(libz);
    dlclose(libm);
    return 0;
}
