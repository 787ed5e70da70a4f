"""The benchmark: `python -m bench` measures throughput against a floor and overload safety."""
