"""Batch augmentation: every output is its input shifted (and maybe mirrored) within the configured range."""

import pytest
import torch
import torch.nn.functional as F

from ssgan.data.augment import RandomShiftFlip
from ssgan.errors import SSGANError


def candidates(image: torch.Tensor, max_shift: int, flip: bool) -> list[torch.Tensor]:
    """Every image the augmentation may produce from ``image`` (C, H, W), built by slicing."""
    _, height, width = image.shape
    views = [image, image.flip(-1)] if flip else [image]
    out = []
    for view in views:
        padded = F.pad(view, (max_shift,) * 4)
        for dy in range(2 * max_shift + 1):
            for dx in range(2 * max_shift + 1):
                out.append(padded[:, dy : dy + height, dx : dx + width])
    return out


@pytest.mark.parametrize("max_shift,flip", [(1, False), (2, True)])
def test_each_image_is_a_shifted_or_mirrored_copy(max_shift: int, flip: bool) -> None:
    torch.manual_seed(0)
    images = torch.rand(64, 3, 7, 9)
    augmented = RandomShiftFlip(max_shift, flip)(images)
    assert augmented.shape == images.shape
    for original, result in zip(images, augmented):
        assert any(torch.equal(result, c) for c in candidates(original, max_shift, flip))
    # the draws vary: not every image is left as it was
    assert not torch.equal(augmented, images)


def test_flip_mirrors_about_half_and_shift_zero_without_flip_is_identity() -> None:
    torch.manual_seed(1)
    images = torch.rand(400, 1, 5, 5)
    mirrored = RandomShiftFlip(0, True)(images)
    flipped = torch.tensor([torch.equal(m, x.flip(-1)) for m, x in zip(mirrored, images)])
    assert 150 < int(flipped.sum()) < 250
    assert torch.equal(RandomShiftFlip(0, False)(images), images)


def test_same_seed_same_augmentation() -> None:
    images = torch.rand(10, 1, 6, 6)
    torch.manual_seed(3)
    first = RandomShiftFlip(2, True)(images)
    torch.manual_seed(3)
    assert torch.equal(RandomShiftFlip(2, True)(images), first)


def test_flat_inputs_and_bad_shift_are_refused_clearly() -> None:
    with pytest.raises(SSGANError, match=r"needs image batches \(B, C, H, W\); got inputs of shape \(4, 10\)"):
        RandomShiftFlip(1)(torch.rand(4, 10))
    with pytest.raises(SSGANError, match="max_shift=-1 must be a non-negative integer"):
        RandomShiftFlip(-1)
