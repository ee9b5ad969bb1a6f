"""Typed configuration: per-model config (models/<name>/config.yaml) and server settings.

This package is the one place where configuration is defined. Every field is typed and validated by
pydantic, so a bad file fails at load time with the field's path in the message.
"""

from server.config.errors import ConfigError
from server.config.model_config import (
    DecisionConfig,
    InputSpec,
    ModelConfig,
    ModelTask,
    load_model_config,
)
from server.config.quantization_config import AccuracyBudget, QuantizationConfig

__all__ = [
    "AccuracyBudget",
    "ConfigError",
    "DecisionConfig",
    "InputSpec",
    "ModelConfig",
    "ModelTask",
    "QuantizationConfig",
    "load_model_config",
]
