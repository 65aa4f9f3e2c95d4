"""The pieces of ``benchmarks/run.py``: the machine and its processes (``system``), wrk
(``wrk``), the servers under test (``targets``), the seven measurements (``measures``) and the
table, JSON and chart (``report``)."""
