"""The demo applications (IJCAI demo paper): super resolution, coloring, style transfer; data pairs,
quality metrics.

Modules:
- `quality`: PSNR and SSIM on the luma channel Y (the super-resolution convention), generic PSNR,
  and sRGB <-> CIE Lab conversions with the normalisation used by coloring.
- `pairs`: seeded training pairs (low-res/high-res crops for super resolution, L/ab crops for
  coloring), evaluation pairs against the bicubic baseline, and the benchmark image folders.
"""
