"""A child process for tests/test_faults.py (no tests here): `python -m
model.train`, held still while it saves the new version, inside the write
transaction, so that the test can SIGKILL it there.

    python -m tests.helpers.killable_save WHEN TRAIN-ARGS...

WHEN is "before" (the version row is inserted, the live flag not yet moved)
or "after" (the live flag moved too, COMMIT not yet run).
"""
import sys
import time

PAUSED = "paused while saving"


def main(when, *args):
    from db import Store
    from model.train import main as train

    real = Store._make_live

    def paused(self, db, version):
        if when == "after":
            real(self, db, version)
        print(f"{PAUSED} ({when}), in a transaction: {db.conn.in_transaction}", flush=True)
        time.sleep(600)

    Store._make_live = paused
    train(list(args))
    print("the retrain finished: the pause never happened", flush=True)
    return 4


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
