"""The host target: builds (Numba and C with -march=native), the per-layer CompiledLayer, the
C network plan (layouts, fusion passes, arena, steps run through one generated driver), the
CompiledNetwork runtime, worker threads and the tuner that times schedules on this CPU.
"""
