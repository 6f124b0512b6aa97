/* The CUDA targets the driver answers to: `cuda-smXY` for the architectures whose
 * tensor-core path (mma.sync m16n8k16, cp.async) the emitter writes, sm_80 and up, and
 * `cuda-sm90a`, Hopper with its architecture-specific instructions (warpgroup MMA),
 * whose code runs only on compute capability 9.0. */
#include <stdio.h>
#include <string.h>

#include "cuda_internal.h"

/* X(target name, architecture, has wgmma) */
#define CUDA_TARGETS(X) \
  X("cuda-sm80", "sm_80", false) \
  X("cuda-sm86", "sm_86", false) \
  X("cuda-sm89", "sm_89", false) \
  X("cuda-sm90", "sm_90", false) \
  X("cuda-sm90a", "sm_90a", true)

static const struct {
  const char *name, *arch;
  bool wgmma;
} targets[] = {
#define X(n, a, w) {n, a, w},
    CUDA_TARGETS(X)
#undef X
};

enum { NTARGETS = sizeof targets / sizeof targets[0] };

bool tile_cuda_target(const char *name, char *arch, size_t arch_len) {
  if (!name) return false;
  for (int i = 0; i < NTARGETS; i++)
    if (strcmp(name, targets[i].name) == 0) {
      if (arch && arch_len) snprintf(arch, arch_len, "%s", targets[i].arch);
      return true;
    }
  return false;
}

bool ce_arch_has_wgmma(const char *arch) {
  for (int i = 0; arch && i < NTARGETS; i++)
    if (strcmp(arch, targets[i].arch) == 0) return targets[i].wgmma;
  return false;
}
