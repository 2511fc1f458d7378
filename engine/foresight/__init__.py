"""Foresight: a job's peak GPU memory and time before it runs; pre-flight; recommended settings.

Memory comes from the model's structure (memory.py) with coefficients fitted to points measured on a GPU
(calibration/, benchmarks/calibrate_memory.py); time per GPU type from calibration and every finished job
(timing.py). No torch at import time: the UI imports this package.
"""

from engine.foresight.predictor import Prediction, predict
from engine.foresight.preflight import PreflightDecision, preflight
from engine.foresight.recommend import Recommendation, recommend
from engine.registry import MODEL_IDS

__all__ = ["MODEL_IDS", "Prediction", "PreflightDecision", "Recommendation", "predict", "preflight", "recommend"]
