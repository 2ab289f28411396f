"""The C emitter: pure renderers from (ConvIR or layer, Schedule) to C source with GCC vector
extensions, at any vector width (AVX-512 16, AVX2 8, NEON 4), shared by the host and arm64
targets. Nothing here builds or runs code.

render (render_c: picks the conv kernel) -> pattern, taps, pblock, column, depthwise (and
direct), pointwise, gemm, blocked, fused (the kernels) -> prelude (vector types and stores);
linear and elementwise render the other layers.
"""
