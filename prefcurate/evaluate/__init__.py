"""Outcome evaluation (`prefcurate eval`): pass@k in the sandbox, generation, reward-model win rates,
paired statistics and arm comparisons at equal steps. See docs/eval.md."""
