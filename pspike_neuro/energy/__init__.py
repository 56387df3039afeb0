"""Operation counts from simulated activity and energy estimates with sourced cost models."""
