"""Training: study config (TOML), windows, loop, calibration, quality figures, MLflow tracking.

Public entry points: ``ml.training.commands.train_command`` (``fadecast train``),
``ml.training.pipeline.run_study`` and ``ml.training.quick.train_quick_model`` (a small real
model in seconds, for other packages' tests).
"""
__all__ = ["commands", "pipeline", "quick"]
