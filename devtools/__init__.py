"""Development tools: a private PostgreSQL cluster, process supervision, the demo's state directory and
the high-availability lab. The tests, the benchmarks, `make demo` and `make ha-lab` use them; the wheel
and the Debian package leave them out (setup.cfg lists the runtime packages only)."""
