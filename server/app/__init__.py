"""Startup and shutdown orchestration of the serving process (`riskserve serve`)."""
