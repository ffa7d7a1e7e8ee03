// fp16 <-> fp32 without <cuda_fp16.h> (NVRTC has no include path on a bare runtime install).
// Shared by every kernel: inference.gpu.kernels hands this file to NVRTC as a named header.
#pragma once

__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
