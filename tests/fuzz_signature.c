/*
 * fuzz_signature.c - libFuzzer harness for the signature parser: any bytes must either parse
 * (and then describe a callable signature) or fail with MVX_EINVAL and a message, never crash,
 * leak or hang. Built by `make fuzz` with clang's -fsanitize=fuzzer,address,undefined.
 */
#include <moduvex.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mvx_signature *sig = NULL;
    int r = mvx_signature_parse((const char *)data, size, &sig);
    if (r == 0) {
        if (!sig || mvx_signature_arg_count(sig) < 0 || mvx_signature_arg_count(sig) > 32)
            abort();
        (void)mvx_signature_return_size(sig);
        mvx_signature_release(mvx_signature_ref(sig));
        mvx_signature_release(sig);
    } else if (r != MVX_EINVAL && r != MVX_ENOMEM) {
        abort();
    } else if (sig != NULL || strlen(mvx_last_error()) == 0) {
        abort();
    }
    return 0;
}
