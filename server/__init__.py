"""riskserve: a low-latency gRPC inference server for financial risk models."""

__version__ = "0.1.0"
