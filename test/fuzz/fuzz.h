/* fuzz.h - the libFuzzer entry point, shared by the fuzz targets and the
 * corpus-replay driver (replay.c) that runs them without libFuzzer. */
#ifndef PGSNAP_FUZZ_H
#define PGSNAP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
