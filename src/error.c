/*
 * error.c - error codes, their descriptions, and the per-thread "last error" message.
 */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

MVX_EXTERN const char *mvx_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define MVX__STRERROR_CASE(name, value, text)                                                      \
    case MVX_##name:                                                                               \
        return text;
        MVX_ERRNO_MAP(MVX__STRERROR_CASE)
#undef MVX__STRERROR_CASE
    default:
        return "unknown error";
    }
}

MVX_EXTERN const char *mvx_err_name(int code)
{
    switch (code) {
    case 0:
        return "MVX_OK";
#define MVX__ERRNAME_CASE(name, value, text)                                                       \
    case MVX_##name:                                                                               \
        return "MVX_" #name;
        MVX_ERRNO_MAP(MVX__ERRNAME_CASE)
#undef MVX__ERRNAME_CASE
    default:
        return "MVX_UNKNOWN";
    }
}

/* Global-dynamic TLS on purpose: it is touched only on error paths. */
static _Thread_local char last_error[256];

MVX_EXTERN const char *mvx_last_error(void)
{
    return last_error;
}

int mvx__error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof last_error - 3)
        snprintf(last_error + n, sizeof last_error - (size_t)n, " (%s)", mvx_err_name(code));
    return code;
}

int64_t mvx__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mvx__deadline(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return INT64_MAX;
    int64_t now = mvx__now_ns();
    return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

MVX_EXTERN int mvx_version(void)
{
    return MVX_VERSION_HEX;
}

#define MVX__STR2(x) #x
#define MVX__STR(x)  MVX__STR2(x)

MVX_EXTERN const char *mvx_version_string(void)
{
    return MVX__STR(MVX_VERSION_MAJOR) "." MVX__STR(MVX_VERSION_MINOR) "." MVX__STR(
        MVX_VERSION_PATCH);
}
