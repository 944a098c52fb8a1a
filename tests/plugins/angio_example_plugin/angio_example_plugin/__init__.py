"""A third-party sam3-angio plugin: one view encoder and one loss term, registered by name."""

from angio_example_plugin.quadrant import QuadrantViewEncoder  # noqa: F401
from angio_example_plugin.entropy import CassEntropyPenalty  # noqa: F401
