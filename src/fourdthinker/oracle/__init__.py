"""The oracle: landmark selection, consistency checks and imagery CoT (rule | openai backends)."""

from fourdthinker.lazy import lazy_exports

__all__ = ["CotRequest", "Landmark", "Landmarks", "Oracle", "OracleError", "OracleUsage", "make_oracle"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "fourdthinker.oracle.base"))
