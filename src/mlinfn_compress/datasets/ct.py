"""CT-like phantoms with lesions, for segmentation: the Shepp-Logan phantom, deformed, with random ellipses."""

from __future__ import annotations

import numpy as np


def ct_phantoms(n: int = 512, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Images (n, size, size, 1) in [0, 1] and lesion masks (n, size, size, 1) of 0 and 1.

    Each image is scikit-image's Shepp-Logan phantom, scaled and shifted at
    random, with one to three bright elliptical lesions inside the head and
    Gaussian noise (sigma 0.05); the mask marks the lesions.
    """
    from skimage.data import shepp_logan_phantom
    from skimage.draw import ellipse
    from skimage.transform import AffineTransform, resize, warp

    rng = np.random.default_rng(seed)
    base = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    images = np.zeros((n, size, size), dtype=np.float64)
    masks = np.zeros((n, size, size), dtype=np.float64)
    for i in range(n):
        scale = rng.uniform(0.85, 1.05)
        shift = rng.uniform(-0.06, 0.06, 2) * size
        centre = np.array([size / 2, size / 2])
        tf = AffineTransform(scale=scale, translation=shift + centre * (1 - scale))
        img = warp(base, tf.inverse, preserve_range=True)
        mask = np.zeros((size, size))
        for _ in range(int(rng.integers(1, 4))):
            r, c = rng.uniform(0.3, 0.7, 2) * size
            rr, cc = ellipse(r, c, rng.uniform(0.04, 0.1) * size, rng.uniform(0.04, 0.1) * size,
                             shape=(size, size), rotation=rng.uniform(0, np.pi))  # fmt: skip
            mask[rr, cc] = 1.0
        img = np.where(mask > 0, np.clip(img + 0.45, 0, 1), img)
        images[i] = np.clip(img + rng.normal(0.0, 0.05, img.shape), 0.0, 1.0)
        masks[i] = mask
    return {"x": images[..., None], "y": masks[..., None]}
