"""Group Scissor training (rank clipping, group connection deletion) and the compile flow.

The names below are imported on first use, so ``import group_scissor`` stays light.
"""

_EXPORTS = {
    "LowRankLinear": "models.lowrank", "LowRankConv2d": "models.lowrank",
    "to_low_rank": "models.lowrank", "merge": "models.lowrank",
    "RankClipping": "group_scissor.rank_clip", "ClipConfig": "group_scissor.rank_clip",
    "NuclearNorm": "group_scissor.lowrank_reg",
    "ForceRegularization": "group_scissor.lowrank_reg",
    "Trainer": "group_scissor.train", "TrainConfig": "group_scissor.train",
    "Callback": "group_scissor.train", "load_dataset": "group_scissor.data",
    "load_model": "models.checkpoint", "CompileConfig": "group_scissor.config",
    "compile": "group_scissor.pipeline", "GroupLasso": "group_scissor.group_lasso",
    "GroupLassoConfig": "group_scissor.group_lasso", "PruneConfig": "group_scissor.prune",
    "DistillConfig": "group_scissor.distill", "Distillation": "group_scissor.distill",
    "EvaluateConfig": "group_scissor.evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'group_scissor' has no attribute {name!r}")
