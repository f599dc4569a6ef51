"""Code behind benchmarks and ``sciml bench`` commands."""
