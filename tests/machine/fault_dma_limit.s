# fault_dma_limit: nine 4 KiB HBM -> VMEM DMAs issued on consecutive cycles while tiny
# allows dma.outstanding = 8 in flight (each takes ~40 cycles). Expected: exit 1, a
# dma-limit fault at chip 0, pc 9, cycle 9 (the ninth dma).
.target tiny
.data smem 0 i32 0, 1, 0, 0, 0, 0, 4096, 1, 1, 0, 0, 0, 0, -1, -1, 0
.code all
  li s1, 0
  dma s1
  dma s1
  dma s1
  dma s1
  dma s1
  dma s1
  dma s1
  dma s1
  dma s1
  halt
