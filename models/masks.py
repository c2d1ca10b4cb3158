"""Weight masks: deleted weights stay deleted.

A mask is a buffer ``weight_mask`` (same shape as ``weight``, 1 = kept, 0 = deleted) on a plain
Linear/Conv2d, so it is part of the state dict (``fc1.weight_mask``) and survives checkpoint,
resume and export. ``apply_masks`` zeroes the masked weights (call it after every optimizer step).
"""

import torch
from torch import nn


def set_mask(layer: nn.Module, mask: torch.Tensor) -> None:
    """Attach (or replace) ``layer``'s mask and zero the deleted weights now."""
    mask = mask.to(layer.weight.dtype).reshape(layer.weight.shape)
    if hasattr(layer, "weight_mask"):
        layer.weight_mask = mask  # registered buffer: assignment keeps it a buffer
    else:
        layer.register_buffer("weight_mask", mask)
    with torch.no_grad():
        layer.weight.mul_(mask)


def restrict_mask(layer: nn.Module, keep: torch.Tensor, group: int | None = None) -> None:
    """Delete the weights where ``keep`` is 0 on top of ``layer``'s mask (all ones when it has
    none) and zero them now. ``keep``: the weight's shape, or with ``group`` i of a grouped conv
    (groups = g) the shape of that group's filters weight[i*F/g:(i+1)*F/g] (other groups keep
    their mask)."""
    w = layer.weight
    old = getattr(layer, "weight_mask", None)
    mask = torch.ones_like(w) if old is None else old.reshape(w.shape).to(w.dtype).clone()
    part = mask
    if group is not None:
        fg = w.shape[0] // layer.groups
        part = mask[group * fg:(group + 1) * fg]
    part.mul_(keep.to(w.device, w.dtype).reshape(part.shape))
    set_mask(layer, mask)


def masked_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if hasattr(m, "weight_mask")}


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    for m in masked_layers(model).values():
        m.weight.mul_(m.weight_mask)


def conform_masks(model: nn.Module, state: dict) -> None:
    """Give every layer whose mask is in ``state`` a mask buffer, so load_state_dict fits."""
    for key, value in state.items():
        if key.endswith(".weight_mask"):
            layer = model.get_submodule(key[: -len(".weight_mask")])
            if not hasattr(layer, "weight_mask"):
                layer.register_buffer("weight_mask", torch.ones_like(value))
