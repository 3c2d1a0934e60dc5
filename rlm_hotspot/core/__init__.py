"""Pure billing rules: money, rating, card codes, validity, refusals (stdlib only, no clock, no I/O)."""
