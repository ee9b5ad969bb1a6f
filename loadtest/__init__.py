"""riskserve's SLA load tester: an open-loop gRPC load generator with a PASS/FAIL verdict."""
