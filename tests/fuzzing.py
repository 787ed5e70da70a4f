"""What the schemathesis run counted, for the terminal summary."""

from collections import Counter

stats = {"cases": 0, "failures": 0}
statuses: Counter[str] = Counter()
