"""What the schemathesis run counted, for the terminal summary."""

stats = {"cases": 0, "failures": 0}
