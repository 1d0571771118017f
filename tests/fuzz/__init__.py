"""Fuzzing folio-replay's inputs and outputs (issue 15): seeds cut from the real fixtures
(:mod:`.seeds`), mutators per input class (:mod:`.mutators`), the oracle of each class
(:mod:`.targets`: no crash, no traceback, no hang, fast = reference where both accept, no
value stored wrong), and a driver running cases in worker processes (:mod:`.run`;
``python -m tests.fuzz.run --cases 10000``). ``test_fuzz_ci.py`` runs a bounded, fixed-seed
run in the normal test suite and replays every case that ever failed
(``regressions.json``).
"""
