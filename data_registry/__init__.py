"""fadecast's data registry: readers for cycler exports, validation, a versioned store."""
from data_registry.errors import FadecastError, IngestWarning
from data_registry.home import fadecast_home
from data_registry.schema import CYCLES, EIS, SAMPLES, SCHEMA_VERSION

__all__ = ["FadecastError", "IngestWarning", "fadecast_home", "SAMPLES", "CYCLES", "EIS",
           "SCHEMA_VERSION"]
