"""``make bench``: the performance targets of the README's Benchmarks section, measured on
this machine.

Runs the worker's own ladder command bare and per rung, then the real stack (API and worker
as processes on an isolated database, bucket and queue prefix) through the HTTP flow a
client uses, and prints one table. Outputs (clips, logs, results.json) go to bench/out/.
"""
