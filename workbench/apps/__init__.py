"""The demo applications (IJCAI demo paper): super resolution, coloring, style transfer; data pairs,
quality metrics, training and pruning.

Modules:
- `quality`: PSNR and SSIM on the luma channel Y (the super-resolution convention), generic PSNR,
  and sRGB <-> CIE Lab conversions with the normalisation used by coloring.
- `pairs`: seeded training pairs (low-res/high-res crops for super resolution, L/ab crops for
  coloring), evaluation pairs against the bicubic baseline, and the benchmark image folders.
- `images`: photos <-> float batches, padding to a size multiple, evaluation photo sets (the
  benchmark folders, else a held-out bundled photo).
- `training`: `fit`, the seeded, resumable image-to-image training loop (any loss), `evaluate`
  (mean metrics over a data set) and `predict`.
- `super_resolution`, `coloring`, `style_transfer`: each app's data, loss, training, evaluation
  and its image-in, image-out function (`upscale`, `colorize`, `stylize`); style transfer's loss
  network is a fixed random multi-scale conv net (no pretrained VGG here).
- `prune`: the demo paper's scheme per app (`app_config`) and resumable ADMM pruning + masked
  retraining through `fit` (`prune_app`), with the quality of each phase in the record.
"""
