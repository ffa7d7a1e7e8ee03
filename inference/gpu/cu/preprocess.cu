// Camera buffer (uint8 Mono8 / RGB8 / BGR8 / RGBa8 / Bayer) -> letterboxed, normalized NCHW
// engine input (fp32 or fp16), in ONE pass. One thread per output pixel (all channels).
//
// Bit-for-bit the CPU reference (OpenCV) wherever we could make it so:
//  * Bayer: OpenCV's bilinear demosaic (COLOR_Bayer*2RGB): rounded 4-neighbour / 2-neighbour
//    means, and the 1-pixel border copied from its inner neighbour (= clamp the sample
//    position into [1, H-2] x [1, W-2]). Gray models: OpenCV's Bayer*2GRAY (one rounding).
//  * Colour -> gray: (R*9798 + G*19235 + B*3735 + 2^14) >> 15 (OpenCV 5's cvtColor).
//  * Resize: INTER_LINEAR with half-pixel centres and OpenCV's fixed-point arithmetic
//    (11-bit coefficients, the SIMD vertical pass's rounding): the letterbox interior
//    is the uint8 image cv2.resize produces, then x * (1/255) in float32.
// Pad (and everything outside the resized interior) is 114, normalized like any pixel.

typedef unsigned long long u64;

#include "fp16.cuh"  // f32_to_f16, f16_to_f32

enum Fmt { MONO8 = 0, RGB8 = 1, BGR8 = 2, RGBA8 = 3, BAYER = 4 };

struct Params {
    int src_h, src_w, src_pitch, src_image_stride;  // bytes; one image after another
    int fmt, r_y, r_x;                              // Bayer: R site parity in the 2x2 tile
    int in_h, in_w, channels, out_half;
    int resized_h, resized_w, pad_y, pad_x;
    double scale_x, scale_y;                        // source pixels per resized pixel
    float mean[3], inv_std[3];                      // normalization after x/255
};

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Demosaiced colour at (y, x), scaled by 4 and unrounded (so gray can round once).
__device__ __forceinline__ void bayer4(const unsigned char* s, const Params& p, int y, int x, int& r4, int& g4, int& b4) {
    y = clampi(y, 1, p.src_h - 2);
    x = clampi(x, 1, p.src_w - 2);
    const unsigned char* c = s + (u64)y * p.src_pitch + x;
    const int P = p.src_pitch;
    int C = c[0], N = c[-P], S = c[P], W = c[-1], E = c[1];
    int cross = N + S + W + E, diag = c[-P - 1] + c[-P + 1] + c[P - 1] + c[P + 1];
    bool ry = ((y & 1) == p.r_y), rx = ((x & 1) == p.r_x);
    if (ry && rx) {            // R site
        r4 = 4 * C; g4 = cross; b4 = diag;
    } else if (!ry && !rx) {   // B site
        b4 = 4 * C; g4 = cross; r4 = diag;
    } else if (ry) {           // G on an R row: R left/right, B above/below
        g4 = 4 * C; r4 = 2 * (W + E); b4 = 2 * (N + S);
    } else {                   // G on a B row
        g4 = 4 * C; b4 = 2 * (W + E); r4 = 2 * (N + S);
    }
}

// Source pixel as the CPU path's full-resolution "prepared" image: RGB (channels 3) or gray.
__device__ __forceinline__ void fetch(const unsigned char* s, const Params& p, int y, int x, int v[3]) {
    if (p.fmt == BAYER) {
        int r4, g4, b4;
        bayer4(s, p, y, x, r4, g4, b4);
        if (p.channels == 1) {
            v[0] = (r4 * 4899 + g4 * 9617 + b4 * 1868 + (1 << 15)) >> 16;
        } else {
            v[0] = (r4 + 2) >> 2; v[1] = (g4 + 2) >> 2; v[2] = (b4 + 2) >> 2;
        }
        return;
    }
    const unsigned char* px = s + (u64)y * p.src_pitch;
    int r, g, b;
    if (p.fmt == MONO8) {
        r = g = b = px[x];
        if (p.channels == 1) { v[0] = r; return; }
    } else if (p.fmt == RGB8) {
        px += 3 * x; r = px[0]; g = px[1]; b = px[2];
    } else if (p.fmt == BGR8) {
        px += 3 * x; b = px[0]; g = px[1]; r = px[2];
    } else {  // RGBA8
        px += 4 * x; r = px[0]; g = px[1]; b = px[2];
    }
    if (p.channels == 1) {
        v[0] = (r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15;
    } else {
        v[0] = r; v[1] = g; v[2] = b;
    }
}

// OpenCV resize.cpp: fx = (float)((dx + 0.5) * scale - 0.5); clamp; 11-bit coefficients.
__device__ __forceinline__ void coeffs(int d, double scale, int size, int& i0, int& i1, int& c0, int& c1) {
    float f = (float)((d + 0.5) * scale - 0.5);
    int i = (int)floorf(f);
    float w = f - (float)i;
    if (i < 0) { i = 0; w = 0.f; }
    if (i >= size - 1) { i = size - 1; w = 0.f; }
    i0 = i;
    i1 = min(i + 1, size - 1);
    c0 = __float2int_rn((1.f - w) * 2048.f);
    c1 = 2048 - c0;
}

extern "C" __global__ void letterbox_normalize(const unsigned char* __restrict__ src, void* __restrict__ dst, const Params p) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= p.in_w || y >= p.in_h) return;
    const unsigned char* s = src + (u64)n * p.src_image_stride;
    const int C = p.channels;
    int v[3] = {114, 114, 114};
    const int rx = x - p.pad_x, ry = y - p.pad_y;
    if (rx >= 0 && rx < p.resized_w && ry >= 0 && ry < p.resized_h) {
        int x0, x1, a0, a1, y0, y1, b0, b1;
        coeffs(rx, p.scale_x, p.src_w, x0, x1, a0, a1);
        coeffs(ry, p.scale_y, p.src_h, y0, y1, b0, b1);
        int p00[3], p01[3], p10[3], p11[3];
        fetch(s, p, y0, x0, p00);
        fetch(s, p, y0, x1, p01);
        fetch(s, p, y1, x0, p10);
        fetch(s, p, y1, x1, p11);
#pragma unroll
        for (int c = 0; c < 3; ++c) {  // constant bounds keep the arrays in registers
            if (c >= C) break;
            int r0 = p00[c] * a0 + p01[c] * a1;
            int r1 = p10[c] * a0 + p11[c] * a1;
            int o = (((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2;
            v[c] = clampi(o, 0, 255);
        }
    }
    const u64 plane = (u64)p.in_h * p.in_w;
    const u64 base = (u64)n * C * plane + (u64)y * p.in_w + x;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        if (c >= C) break;
        float f = ((float)v[c] * (1.0f / 255.0f) - p.mean[c]) * p.inv_std[c];
        if (p.out_half) {
            ((unsigned short*)dst)[base + c * plane] = f32_to_f16(f);
        } else {
            ((float*)dst)[base + c * plane] = f;
        }
    }
}
