"""Benchmark suite for twisted_p2p: ``python -m bench --help``.

Every figure is set against a reference measured in the same run (a raw loopback TCP
stream, the textbook bound, libtorrent), because the machines it runs on are shared and
noisy. Nothing here is collected by pytest, and no test asserts a time.
"""
