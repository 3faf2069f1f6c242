"""The oracle: landmark selection, consistency checks and imagery CoT (rule | openai backends)."""

from fourdthinker.oracle.base import (
    CotRequest,
    Landmark,
    Landmarks,
    Oracle,
    OracleError,
    OracleUsage,
    make_oracle,
)

__all__ = ["CotRequest", "Landmark", "Landmarks", "Oracle", "OracleError", "OracleUsage", "make_oracle"]
