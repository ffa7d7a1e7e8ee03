// Confidence prefilter + compaction on the GPU: only candidates that can pass the lowest
// class threshold come back to the host, as whole rows (box + scores), with their index.
// The host then runs inference/decode.py on those rows, so labels and scores are exactly
// the CPU path's (same float32 values, same arithmetic) and NMS sees the same candidates in
// the same order (indices are sorted on the host: atomics do not preserve order).
typedef unsigned long long u64;

#include "fp16.cuh"  // f32_to_f16, f16_to_f32

__device__ __forceinline__ float ld(const void* p, u64 i, int half) {
    return half ? f16_to_f32(((const unsigned short*)p)[i]) : ((const float*)p)[i];
}

// yolov8: out [B, 4 + C, N]. One thread per candidate n; reads are coalesced across n.
extern "C" __global__ void filter_yolov8(const void* out, int half, int B, int C, int N, float min_thr,
                                         int* counts, int* indices, float* rows) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (n >= N) return;
    const int width = 4 + C;
    const u64 base = (u64)b * width * N + n;
    float best = __int_as_float(0xff800000);
    for (int c = 0; c < C; ++c) best = fmaxf(best, ld(out, base + (u64)(4 + c) * N, half));
    if (!(best >= min_thr)) return;
    const int k = atomicAdd(&counts[b], 1);
    indices[(u64)b * N + k] = n;
    float* row = rows + ((u64)b * N + k) * width;
    for (int j = 0; j < width; ++j) row[j] = ld(out, base + (u64)j * N, half);
}

// yolov5: out [B, N, 5 + C]; candidate passes when obj * max(cls) >= min_thr.
extern "C" __global__ void filter_yolov5(const void* out, int half, int B, int C, int N, float min_thr,
                                         int* counts, int* indices, float* rows) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (n >= N) return;
    const int width = 5 + C;
    const u64 base = ((u64)b * N + n) * width;
    float best = __int_as_float(0xff800000);
    for (int c = 0; c < C; ++c) best = fmaxf(best, ld(out, base + 5 + c, half));
    const float obj = ld(out, base + 4, half);
    if (!(obj * best >= min_thr)) return;
    const int k = atomicAdd(&counts[b], 1);
    indices[(u64)b * N + k] = n;
    float* row = rows + ((u64)b * N + k) * width;
    for (int j = 0; j < width; ++j) row[j] = ld(out, base + j, half);
}
