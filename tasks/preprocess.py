"""Make image datasets interchangeable: one image size, one input scale, one input width, one class count.

A learning algorithm meta-trained on one dataset is evaluated on others, so their examples must reach it in
the same shape and on the same scale. Pure functions of numpy arrays.
"""

from __future__ import annotations

import jax
import numpy as np


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """[N, H, W] -> float32 [N, size, size], pixel scale kept.

    When `size` divides H and W, each output pixel is the mean of its block (28 -> 14, 7): every input pixel
    counts once, so no stroke is lost. Otherwise (28 -> 8) antialiased bilinear, which also averages over the
    area an output pixel covers instead of sampling a few input pixels.
    """
    n, h, w = images.shape
    x = images.astype(np.float32)
    if h % size == 0 and w % size == 0:
        return x.reshape(n, size, h // size, size, w // size).mean(axis=(2, 4))
    return np.asarray(jax.image.resize(x, (n, size, size), "bilinear", antialias=True))


def normalize(train_x: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """float32 copies of `train_x` and `others`, standardized with the train set's global mean and std.

    One scalar mean and std (dataset statistics, not per pixel), so that relative pixel intensities survive
    and a border pixel that is always 0 does not blow up; from the train set only, so that nothing about the
    test data leaks into the inputs.
    """
    x = train_x.astype(np.float32)
    mean, std = x.mean(), x.std()
    scale = std if std > 0 else 1.0
    return ((x - mean) / scale, *(((o.astype(np.float32) - mean) / scale) for o in others))


def fit_inputs(x: np.ndarray, dim: int) -> np.ndarray:
    """[N, ...] -> [N, dim]: flattened, then zero-padded or cropped at the end.

    A learner's input width is fixed at meta-training; zeros carry no signal, so padding presents narrower
    examples without inventing features, and cropping drops the trailing ones.
    """
    flat = x.reshape(len(x), -1)
    if flat.shape[1] >= dim:
        return flat[:, :dim]
    return np.pad(flat, ((0, 0), (0, dim - flat.shape[1])))


def fit_classes(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Only the examples with label < k, so that labels fit a learner with k outputs.

    Fewer classes than k need nothing: declare num_classes = k and the unused outputs are never the answer.
    """
    keep = y < k
    return x[keep], y[keep]
