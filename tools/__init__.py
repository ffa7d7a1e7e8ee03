"""Development and measurement tools (bench, soak, load generators, PLC simulator, GPU probes).
They use the runtime packages; the runtime packages never use them."""
