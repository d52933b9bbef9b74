"""Code the tests share (no tests here): conftest.py holds only pytest hooks
and fixtures, so that test modules import helpers from one place."""
