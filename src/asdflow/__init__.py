"""asdflow: anomalous sound detection with attribute-aware representations from
domain-adaptive pre-training."""

__version__ = "0.1.0"
