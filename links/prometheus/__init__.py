"""Prometheus: the live twin's ``/metrics`` (facility meters with units in their names, GPU metrics under the
NVIDIA DCGM exporter's names), written in the text exposition format by hand (docs/links.md)."""
