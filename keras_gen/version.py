"""keras-gen's version: one place, read by the package, its manifests and its reports."""

__version__ = "0.1.0"
