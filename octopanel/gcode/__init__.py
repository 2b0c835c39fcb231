"""Reading G-code: one parser for every line (parse.py) and the rules that judge what may be sent (policy.py)."""
