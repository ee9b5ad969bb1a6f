"""Shared pydantic base: unknown keys are errors, so a typo in a config file never passes silently."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
