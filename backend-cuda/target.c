/* The CUDA targets the driver answers to: `cuda-smXY` for the architectures whose
 * tensor-core path (mma.sync m16n8k16, cp.async) the emitter writes, sm_80 and up. */
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

/* X(target name, architecture) */
#define CUDA_TARGETS(X) \
  X("cuda-sm80", "sm_80") \
  X("cuda-sm86", "sm_86") \
  X("cuda-sm89", "sm_89") \
  X("cuda-sm90", "sm_90")

bool tile_cuda_target(const char *name, char *arch, size_t arch_len) {
  static const struct { const char *name, *arch; } targets[] = {
#define X(n, a) {n, a},
      CUDA_TARGETS(X)
#undef X
  };
  if (!name) return false;
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
    if (strcmp(name, targets[i].name) == 0) {
      if (arch && arch_len) snprintf(arch, arch_len, "%s", targets[i].arch);
      return true;
    }
  return false;
}
