"""The CUDA target: compile(model, target="cuda") renders CUDA C from the LR (conv.py: the
pattern conv kernel and its GPU weight storage; ops.py: pooling, add, activations, linear),
compiles it at run time with NVRTC (nvrtc.py), launches it through the CUDA driver API on
torch's stream (driver.py) and runs a whole network eagerly or as one CUDA graph
(network.py). schedule.py holds the GPU schedule and its space, tune.py the per-layer tuner.
Imports run one way: network -> conv, ops -> schedule; driver -> nvrtc.
"""
