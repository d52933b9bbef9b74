"""A child process for tests/test_demo_faults.py (no tests here): the demo's
correction path, held still inside the store's write transaction so that the
test can SIGKILL it there, at a known step rather than by luck.

    python -m tests.helpers.killable_correction DB IMAGE LABEL STEP

STEP names the Store method (add_image, add_prediction, add_correction)
after which the correction stops: the child prints PAUSED, the step and
whether a transaction is open, then sleeps.
"""
import sys
import time

PAUSED = "paused after"


def main(db, image, label, step):
    import demo_handlers as handlers
    from db import Store
    from tests.helpers.common import TEST_ALPHA

    real = getattr(Store, step)

    def paused(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        print(f"{PAUSED} {step}, in a transaction: {self.db.conn.in_transaction}", flush=True)
        time.sleep(600)
        return result

    setattr(Store, step, paused)
    handlers.app.configure(db=db, alpha=TEST_ALPHA)
    handlers.correct(image, label, "sketch")
    print("the correction finished: the pause never happened", flush=True)
    return 4


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
