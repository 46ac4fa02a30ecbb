"""Nexmark queries q0–q8, q11 and q12 as streamlab pipelines, Apache Beam's Python queries on the same events,
and the benchmark behind ``streamlab bench nexmark`` (``python -m nexmark.bench`` from ``benchmarks/``)."""
